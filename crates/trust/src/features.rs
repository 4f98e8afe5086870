//! The behaviour features of one device over one window, as a fixed vector the models read.

use serde::Serialize;
use vouch_types::TrafficWindow;

/// How many features a window has.
pub const N: usize = 9;

/// The features, in vector order: what each number means, for explanations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Messages published per second.
    PublishRate,
    /// Bytes sent per second.
    BytesOutRate,
    /// Bytes received per second.
    BytesInRate,
    /// Distinct topics published to.
    DistinctTopics,
    /// Topics published to for the first time.
    NewTopics,
    /// Requests the policy refused.
    AuthFailures,
    /// Sessions opened (connection churn).
    Connects,
    /// Sessions closed.
    Disconnects,
    /// Sessions open at once beyond one (the same identity in two places).
    ExtraSessions,
}

impl Feature {
    /// Every feature, in vector order.
    pub const ALL: [Feature; N] = [
        Self::PublishRate,
        Self::BytesOutRate,
        Self::BytesInRate,
        Self::DistinctTopics,
        Self::NewTopics,
        Self::AuthFailures,
        Self::Connects,
        Self::Disconnects,
        Self::ExtraSessions,
    ];

    /// How the feature reads in an explanation.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::PublishRate => "messages/s published",
            Self::BytesOutRate => "bytes/s sent",
            Self::BytesInRate => "bytes/s received",
            Self::DistinctTopics => "distinct topics",
            Self::NewTopics => "new topics",
            Self::AuthFailures => "refused requests",
            Self::Connects => "connections opened",
            Self::Disconnects => "connections closed",
            Self::ExtraSessions => "simultaneous extra sessions",
        }
    }
}

/// One window's features.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Features(pub [f64; N]);

impl Features {
    /// The features of a gateway traffic window. Rates are per second of the window; the device's own
    /// direction is "out" (what it sends), which the window calls `in` (into the broker).
    pub fn of(w: &TrafficWindow) -> Self {
        let secs = ((w.end.unix_micros() - w.start.unix_micros()) as f64 / 1e6).max(1e-3);
        Features([
            w.msgs_in as f64 / secs,
            w.bytes_in as f64 / secs,
            w.bytes_out as f64 / secs,
            f64::from(w.distinct_topics),
            f64::from(w.new_topics),
            f64::from(w.auth_failures),
            f64::from(w.connects),
            f64::from(w.disconnects),
            f64::from(w.sessions.saturating_sub(1)),
        ])
    }

    /// One feature's value.
    pub fn get(&self, f: Feature) -> f64 {
        self.0[f as usize]
    }
}
