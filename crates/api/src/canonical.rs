//! Header names of HTTP/1.1 answers in their canonical spelling (`Content-Type`, `WWW-Authenticate`), for
//! clients that match names case-sensitively although HTTP says they are case-insensitive.
//!
//! This exists because hyper writes header names in lower case and offers nothing better: its title-case
//! option writes `Www-Authenticate`, and the case map its `preserve_header_case` option reads is private to
//! hyper. libest's `estclient`, the reference EST client many devices build on, compares `Content-Type`,
//! `Content-Length` and `WWW-Authenticate` byte for byte and fails on anything else. So the EST listener's
//! connections pass through [`CanonicalHeads`], which rewrites the names in the head of each answer as it is
//! written. The rewrite only changes letter case, never a length, and stops at the first final (non-1xx)
//! answer's head: the listener using it closes the connection after one answer (see
//! [`crate::serve::Http1Options`]), so everything after that head is its body.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A head longer than this is not an answer hyper wrote: it is passed on unchanged.
const MAX_HEAD: usize = 64 * 1024;

/// Names whose canonical spelling is not title case.
const SPECIAL: &[&str] = &[
    "WWW-Authenticate",
    "ETag",
    "Content-MD5",
    "TE",
    "DNT",
    "X-XSS-Protection",
];

/// The canonical spelling of a header name: the registered spelling where title case is wrong, else title
/// case (`content-transfer-encoding` → `Content-Transfer-Encoding`). Same length as `name`.
pub(crate) fn canonical_name(name: &[u8]) -> Vec<u8> {
    if let Some(s) = SPECIAL
        .iter()
        .find(|s| s.as_bytes().eq_ignore_ascii_case(name))
    {
        return s.as_bytes().to_vec();
    }
    let mut upper = true;
    name.iter()
        .map(|&b| {
            let out = if upper {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            };
            upper = b == b'-';
            out
        })
        .collect()
}

/// `head` (status line, header lines, blank line) with every header name in canonical spelling.
pub(crate) fn canonical_head(head: &mut [u8]) {
    let mut lines = head.split_mut(|b| *b == b'\n');
    // The status line has no header name.
    lines.next();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let Some(name) = line.get_mut(..colon) else {
            continue;
        };
        let fixed = canonical_name(name);
        name.copy_from_slice(&fixed);
    }
}

/// Where the writer is in the answer.
enum State {
    /// Collecting an answer's head (accepted from hyper, not yet written).
    Head(Vec<u8>),
    /// Writing a rewritten head (`.1` bytes of it written), then going on as `.2` says.
    Flushing(Vec<u8>, usize, After),
    /// Past the final answer's head: bytes pass through.
    Body,
}

/// What follows a head.
#[derive(Clone, Copy)]
enum After {
    /// Another head (the one written was informational, 1xx).
    Head,
    /// The body.
    Body,
}

/// A stream whose written answer heads get canonical header names (see the module documentation).
pub(crate) struct CanonicalHeads<S> {
    inner: S,
    state: State,
}

impl<S> CanonicalHeads<S> {
    /// Wraps `inner`, the plaintext side of one connection.
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            state: State::Head(Vec::new()),
        }
    }
}

/// The end of the head in `buf` (just past the blank line), searching from `from`.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| from + i + 4)
}

impl<S: AsyncWrite + Unpin> CanonicalHeads<S> {
    /// Writes out a rewritten head still pending; ready when there is none.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let State::Flushing(head, written, after) = &mut self.state {
            let rest = head.get(*written..).unwrap_or_default();
            if rest.is_empty() {
                self.state = match after {
                    After::Head => State::Head(Vec::new()),
                    After::Body => State::Body,
                };
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CanonicalHeads<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CanonicalHeads<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match this.poll_pending(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map(|r| r.map(|()| 0)),
        }
        let State::Head(head) = &mut this.state else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let before = head.len();
        head.extend_from_slice(buf);
        // The blank line may straddle two writes.
        match head_end(head, before.saturating_sub(3)) {
            Some(end) => {
                head.truncate(end);
                let informational = head.get(9) == Some(&b'1');
                let mut done = std::mem::take(head);
                canonical_head(&mut done);
                let after = if informational {
                    After::Head
                } else {
                    After::Body
                };
                this.state = State::Flushing(done, 0, after);
                // Accepted: the rest of `buf` (body bytes) comes in the next write, after the head.
                Poll::Ready(Ok(end - before))
            }
            None if head.len() > MAX_HEAD => {
                let unchanged = std::mem::take(head);
                this.state = State::Flushing(unchanged, 0, After::Body);
                Poll::Ready(Ok(buf.len()))
            }
            None => Poll::Ready(Ok(buf.len())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        // A head that never ended (the connection is closing mid-answer) goes out as it is.
        if let State::Head(head) = &mut self.state
            && !head.is_empty()
        {
            let unchanged = std::mem::take(head);
            self.state = State::Flushing(unchanged, 0, After::Body);
            std::task::ready!(self.poll_pending(cx))?;
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn names_get_their_registered_spelling() {
        for (from, to) in [
            ("content-type", "Content-Type"),
            ("content-length", "Content-Length"),
            ("content-transfer-encoding", "Content-Transfer-Encoding"),
            ("www-authenticate", "WWW-Authenticate"),
            ("Www-Authenticate", "WWW-Authenticate"),
            ("retry-after", "Retry-After"),
            ("etag", "ETag"),
            ("x", "X"),
            ("-a", "-A"),
            ("", ""),
        ] {
            assert_eq!(canonical_name(from.as_bytes()), to.as_bytes(), "{from}");
        }
    }

    #[test]
    fn values_and_the_status_line_are_left_alone() {
        let mut head =
            b"HTTP/1.1 401 unauthorized\r\nwww-authenticate: basic realm=\"a:b\"\r\n\r\n".to_vec();
        canonical_head(&mut head);
        assert_eq!(
            head,
            b"HTTP/1.1 401 unauthorized\r\nWWW-Authenticate: basic realm=\"a:b\"\r\n\r\n"
        );
    }

    /// Writes `chunks` one `write` each and returns what reached the inner stream.
    async fn through(chunks: &[&[u8]]) -> Vec<u8> {
        let mut w = CanonicalHeads::new(Vec::new());
        for c in chunks {
            w.write_all(c).await.unwrap();
        }
        w.shutdown().await.unwrap();
        w.inner
    }

    #[tokio::test]
    async fn heads_split_anywhere_are_rewritten_and_bodies_pass_unchanged() {
        let answer: &[u8] =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-type: a/b\r\ncontent-length: 12\r\n\r\ncontent-type";
        let want: &[u8] =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: a/b\r\nContent-Length: 12\r\n\r\ncontent-type";
        assert_eq!(through(&[answer]).await, want);
        for cut in 1..answer.len() {
            let (a, b) = answer.split_at(cut);
            assert_eq!(through(&[a, b]).await, want, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = answer.chunks(1).collect();
        assert_eq!(through(&bytes).await, want);
    }

    #[tokio::test]
    async fn an_unfinished_head_goes_out_as_it_is() {
        assert_eq!(
            through(&[b"HTTP/1.1 200 OK\r\ncontent-"]).await,
            b"HTTP/1.1 200 OK\r\ncontent-"
        );
    }
}
