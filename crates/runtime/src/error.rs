//! The runtime's one error: what failed, in words an operator can act on, with the library error beneath.
//!
//! Starting a server touches files, the store, the CA, sockets and every service's constructor; its caller
//! (the binary) can only report a failure, never recover from one, so the type keeps the message and the
//! cause (`source()`) rather than an enum per library. Configuration mistakes are apart (`Invalid`): they
//! are the caller's input, named by key.

use std::error::Error as StdError;

/// A failure to configure, start or run the server's services.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A configuration value (or a file it names) is not acceptable; the message names the key.
    #[error("{0}")]
    Invalid(String),
    /// `what` failed because of `source`.
    #[error("{what}")]
    Failed {
        /// What was being done ("reading the CA passphrase file /etc/vouch/pass").
        what: String,
        /// Why it failed.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

/// The runtime's result.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

impl RuntimeError {
    /// The whole chain on one line (`what: cause: cause`), as the binary prints it.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut next = self.source();
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        out
    }
}

/// Names what was being done when a library call failed (the runtime's `anyhow::Context`).
pub trait Context<T> {
    /// Wraps the error with `what`.
    fn context(self, what: impl Into<String>) -> Result<T>;
    /// Wraps the error with the text `what` makes, only when there is an error.
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: StdError + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| RuntimeError::Failed {
            what: what.into(),
            source: Box::new(e),
        })
    }

    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| RuntimeError::Failed {
            what: what().into(),
            source: Box::new(e),
        })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.ok_or_else(|| RuntimeError::Invalid(what.into()))
    }

    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.ok_or_else(|| RuntimeError::Invalid(what().into()))
    }
}

/// Returns early with [`RuntimeError::Invalid`] made from a format string.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::RuntimeError::Invalid(format!($($arg)*)))
    };
}
pub(crate) use bail;
