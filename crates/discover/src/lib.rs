//! Passive discovery: reads captured traffic, without sending a packet, and builds an inventory of the devices
//! seen (identity, class and role, risks) and a map of who talks to whom.
//!
//! The path of a frame: [`capture`] reads it from a pcap or pcapng file, [`packet`] slices its headers,
//! [`engine`] finds its conversation and hands the payload to a dissector in [`proto`], which reports
//! [`Fact`]s; [`inventory`] folds them into hosts. At the end, [`report`] joins link-layer and IP views of each
//! device, [`classify`] names its class and role, and risks and the communication map are written out.

pub mod capture;
pub mod classify;
pub mod engine;
pub mod facts;
#[doc(hidden)]
pub mod fuzzing;
pub mod inventory;
pub mod merge;
pub mod oui;
pub mod packet;
pub mod proto;
pub mod report;
pub mod sighting;

#[cfg(test)]
pub(crate) mod testutil;

use std::io::Read;

pub use capture::{CaptureError, Frame, Link, ReadStats, read_capture};
pub use engine::{Engine, Limits};
pub use facts::{CommandKind, Dir, Fact, Proto, Sink, Source, Subject};
pub use report::{DeviceReport, Edge, Endpoint, Report, Risk, RiskFact, RiskKind, Severity};
pub use sighting::sightings;

/// One discovery run over any number of captures.
#[derive(Debug, Default)]
pub struct Discovery {
    engine: Engine,
    files: Vec<String>,
    errors: Vec<String>,
}

impl Discovery {
    /// A run with the given memory bounds.
    pub fn new(limits: Limits) -> Self {
        Discovery {
            engine: Engine::new(limits),
            ..Default::default()
        }
    }

    /// Reads one capture. On a truncated or corrupt file, what came before the bad record is kept (and the
    /// error is also listed in the report).
    pub fn read<R: Read + Send>(
        &mut self,
        name: &str,
        input: R,
    ) -> Result<ReadStats, CaptureError> {
        self.files.push(name.to_owned());
        let engine = &mut self.engine;
        read_capture(input, |f| engine.frame(f))
            .inspect_err(|e| self.errors.push(format!("{name}: {e}")))
    }

    /// Reads one frame (a live capture feeds frames one by one).
    pub fn frame(&mut self, f: Frame<'_>) {
        self.engine.frame(f);
    }

    /// Frames read so far.
    pub fn frames(&self) -> u64 {
        self.engine.stats.frames
    }

    /// Ends the run: the report, compared with `previous` when given (new devices, new talkers, changes).
    pub fn finish(mut self, previous: Option<&Report>) -> Report {
        self.engine.close_all();
        report::build(&self.engine, self.files, self.errors, previous)
    }
}
