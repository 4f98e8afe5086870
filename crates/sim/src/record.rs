//! The fleet's whole run as recorded windows: what the gateway would observe of every device in every
//! window, in time order, each with its device's class — the lines `vouch sim --windows-out` writes and
//! `vouch trust replay` reads.

use vouch_trust::RecordedWindow;

use crate::fleet::Fleet;
use crate::observe::Seen;

impl Fleet {
    /// Every window of the run, window by window and, within one, device by device (the order the gateway
    /// closes them in), each device's observations counted from its first window on.
    pub fn recorded(&self) -> Vec<RecordedWindow> {
        let mut seen: Vec<Seen> = self.devices.iter().map(|_| Seen::new()).collect();
        let mut out = Vec::with_capacity(self.devices.len() * self.config.windows as usize);
        for window in 0..self.config.windows {
            for (d, s) in self.devices.iter().zip(seen.iter_mut()) {
                let (_, w) = self.observe(d.index, window, s);
                out.push(RecordedWindow {
                    window: w,
                    class: d.class,
                });
            }
        }
        out
    }
}
