//! Clear-text line protocols: SSH banners, FTP and Telnet logins (the user name is kept, the password never).

use crate::facts::{Dir, Fact, Proto, Sink, Source};

/// Whether `payload` starts an SSH identification string.
pub fn looks_like_ssh(payload: &[u8]) -> bool {
    payload.starts_with(b"SSH-")
}

/// Reads the start of one direction of an SSH stream: its software banner.
pub fn dissect_ssh(stream: &[u8], dir: Dir, out: &mut dyn Sink) -> bool {
    let Some(line) = first_line(stream) else {
        return stream.len() > 255;
    };
    if let Some(b) = line.strip_prefix("SSH-") {
        let who = if dir == Dir::ToClient {
            dir.server()
        } else {
            dir.client()
        };
        if dir == Dir::ToClient {
            out.fact(who, Fact::Serves(Proto::Ssh));
        } else {
            out.fact(who, Fact::Uses(Proto::Ssh));
        }
        out.fact(who, Fact::SshBanner(b));
    }
    let _ = Source::Ssh;
    true
}

/// Reads the client's side of an FTP control stream: `USER name` then `PASS …` is a clear-text login.
pub fn dissect_ftp(stream: &[u8], dir: Dir, out: &mut dyn Sink) -> bool {
    if dir == Dir::ToClient {
        if stream.starts_with(b"220") {
            out.fact(dir.server(), Fact::Serves(Proto::Ftp));
        }
        return true;
    }
    let mut user = None;
    for line in stream.split(|&b| b == b'\n') {
        let line = std::str::from_utf8(line).unwrap_or("").trim_end();
        if let Some(u) = line
            .strip_prefix("USER ")
            .or_else(|| line.strip_prefix("user "))
        {
            user = Some(u.trim());
        } else if line.starts_with("PASS") || line.starts_with("pass") {
            out.fact(dir.client(), Fact::Uses(Proto::Ftp));
            out.fact(
                dir.client(),
                Fact::CleartextCredential {
                    proto: Proto::Ftp,
                    user,
                },
            );
            return true;
        }
    }
    stream.len() >= 4096
}

/// Reads the client's side of a Telnet stream: anything typed after the server asked for a login is a clear-text
/// credential (reported without its text).
pub fn dissect_telnet(stream: &[u8], dir: Dir, out: &mut dyn Sink) -> bool {
    out.fact(dir.server(), Fact::Serves(Proto::Telnet));
    out.fact(dir.client(), Fact::Uses(Proto::Telnet));
    if dir == Dir::ToServer && stream.iter().any(|b| b.is_ascii_alphanumeric()) {
        out.fact(
            dir.client(),
            Fact::CleartextCredential {
                proto: Proto::Telnet,
                user: None,
            },
        );
    }
    true
}

fn first_line(s: &[u8]) -> Option<&str> {
    let end = s.iter().take(255).position(|&b| b == b'\n')?;
    std::str::from_utf8(&s[..end]).ok().map(str::trim_end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;

    #[test]
    fn ftp_login_keeps_the_user_only() {
        let mut c = Collect::default();
        assert!(dissect_ftp(
            b"USER operator\r\nPASS hunter2\r\n",
            Dir::ToServer,
            &mut c
        ));
        assert!(c.has(r#"user: Some("operator")"#), "{c:?}");
        assert!(!c.has("hunter2"));
    }

    #[test]
    fn ssh_banner() {
        let mut c = Collect::default();
        assert!(dissect_ssh(
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
            Dir::ToClient,
            &mut c
        ));
        assert!(c.has(r#"SshBanner("2.0-OpenSSH_9.2p1 Debian-2")"#), "{c:?}");
        for cut in 0..20 {
            dissect_ssh(&b"SSH-2.0-OpenSSH_9.2p1"[..cut], Dir::ToServer, &mut c);
        }
    }
}
