//! Moving bytes one direction of a session: bounded writes that a closing session abandons, and the pump
//! that reads, lets the relay decide, and writes — the session's only socket loop.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::close::CloseReason;
use crate::relay::Flow;
use crate::session::{CLOSE_GRACE, Session};

/// Writes and flushes: a TLS stream may keep the tail of a write buffered until flushed.
async fn write<W: AsyncWrite + Unpin>(wr: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    wr.write_all(bytes).await?;
    wr.flush().await
}

/// [`write`], failing once it has taken `deadline` (the peer does not read).
pub(crate) async fn write_within<W: AsyncWrite + Unpin>(
    deadline: Duration,
    wr: &mut W,
    bytes: &[u8],
) -> std::io::Result<()> {
    tokio::time::timeout(deadline, write(wr, bytes))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

pub(crate) fn reply(tx: &mpsc::Sender<Vec<u8>>, bytes: Vec<u8>) -> Result<(), CloseReason> {
    tx.try_send(bytes).map_err(|_| CloseReason::SlowClient)
}

/// How a write of a pump ended.
enum Sent {
    Done,
    /// The peer closed or the write failed.
    Failed,
    /// Blocked for `write_timeout`: the peer does not read.
    Stalled,
    /// The session ended while the write was blocked; `clean` if no packet was left half-written.
    Abandoned {
        clean: bool,
    },
}

/// Writes `bytes` unless the session ends first or the write stays blocked for `deadline`: a write never
/// keeps a closing session open, whatever the peer does.
async fn send<W: AsyncWrite + Unpin>(
    wr: &mut W,
    bytes: &[u8],
    deadline: Duration,
    close: &mut watch::Receiver<Option<CloseReason>>,
) -> Sent {
    let mut written = 0;
    let outcome = {
        let writing = async {
            while written < bytes.len() {
                match wr.write(&bytes[written..]).await {
                    Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
                    Ok(n) => written += n,
                    Err(e) => return Err(e),
                }
            }
            wr.flush().await
        };
        tokio::select! {
            biased;
            _ = close.wait_for(Option::is_some) => None,
            r = tokio::time::timeout(deadline, writing) => Some(r),
        }
    };
    match outcome {
        None => Sent::Abandoned {
            clean: written == 0 || written == bytes.len(),
        },
        Some(Ok(Ok(()))) => Sent::Done,
        Some(Ok(Err(_))) => Sent::Failed,
        Some(Err(_)) => Sent::Stalled,
    }
}

/// One direction of a session: reads from `rd`, lets `step` decide the complete packets (forwarded bytes
/// into its output), writes them to `wr` together with the answers the other direction queued in
/// `injected`, until the session ends; then writes the queued answers and `goodbye` (within
/// [`CLOSE_GRACE`], and only if no packet was left half-written), and closes `wr`. Every write is bounded
/// by `write_timeout` and abandoned as soon as the session ends.
pub(crate) struct Pump<'a, R, W> {
    pub(crate) s: &'a Session,
    pub(crate) rd: R,
    pub(crate) wr: W,
    pub(crate) buf: Vec<u8>,
    pub(crate) injected: mpsc::Receiver<Vec<u8>>,
    pub(crate) close: watch::Receiver<Option<CloseReason>>,
    /// Why the session ends when `wr` fails, when it stays blocked, and when `rd` ends.
    pub(crate) write_failed: CloseReason,
    pub(crate) write_stalled: CloseReason,
    pub(crate) read_ended: CloseReason,
    pub(crate) write_timeout: Duration,
    /// No write was abandoned or failed half-way: the stream is still at a packet boundary.
    pub(crate) clean: bool,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Pump<'_, R, W> {
    /// Writes `bytes` towards this direction's peer (see [`send`]), ending the session if it fails.
    async fn forward(&mut self, bytes: &[u8]) {
        match send(&mut self.wr, bytes, self.write_timeout, &mut self.close).await {
            Sent::Done => {}
            Sent::Failed => {
                self.clean = false;
                self.s.end(self.write_failed);
            }
            Sent::Stalled => {
                self.clean = false;
                self.s.end(self.write_stalled);
            }
            Sent::Abandoned { clean } => self.clean &= clean,
        }
    }

    pub(crate) async fn run(
        mut self,
        mut step: impl FnMut(&[u8], &mut Vec<u8>) -> Result<(usize, Flow), CloseReason>,
        goodbye: impl FnOnce(CloseReason) -> Option<Vec<u8>>,
    ) {
        let s = self.s;
        let mut out = Vec::new();
        loop {
            out.clear();
            let (consumed, flow) = step(&self.buf, &mut out).unwrap_or_else(|r| (0, Flow::Done(r)));
            self.buf.drain(..consumed);
            if !out.is_empty() {
                self.forward(&out).await;
            }
            if let Flow::Done(reason) = flow {
                s.end(reason);
            }
            let current = *self.close.borrow_and_update();
            if let Some(reason) = current {
                if self.clean {
                    // Answers already queued (a refusal's SUBACK) go out before the goodbye.
                    let last = async {
                        while let Ok(bytes) = self.injected.try_recv() {
                            write(&mut self.wr, &bytes).await?;
                        }
                        if let Some(bye) = goodbye(reason) {
                            write(&mut self.wr, &bye).await?;
                        }
                        self.wr.shutdown().await
                    };
                    let _ = tokio::time::timeout(CLOSE_GRACE, last).await;
                }
                return;
            }
            if self.buf.capacity() > 64 * 1024 && self.buf.len() < 1024 {
                self.buf.shrink_to(4096);
            }
            let injected = tokio::select! {
                _ = self.close.changed() => None,
                Some(bytes) = self.injected.recv() => Some(bytes),
                n = self.rd.read_buf(&mut self.buf) => {
                    if matches!(n, Ok(0) | Err(_)) {
                        s.end(self.read_ended);
                    }
                    None
                }
            };
            if let Some(bytes) = injected {
                self.forward(&bytes).await;
            }
        }
    }
}
