//! One window judged: the engine's verdict and the playbooks' directives, from what is known of the device.
//! The live service ([`crate::TrustService`]) and the offline replay ([`crate::replay`]) both go through
//! [`Judge::judge`], so a recorded window scores the same whichever path it takes. Discovery's sightings go
//! through [`Judge::sight`], which the playbooks see as what it is: not a window.

use vouch_trust::{
    DeviceState, Directive, IdentityState, Responder, Situation, TrustEngine, Verdict, Whereabouts,
};
use vouch_types::{DeviceId, NetworkSighting, Timestamp, TrafficWindow};

/// The models a trust service holds.
#[derive(Debug, Clone)]
pub(crate) struct Judge {
    /// Baselines, class models and penalty memory.
    pub engine: TrustEngine,
    /// The playbooks and their per-device memory.
    pub responder: Responder,
}

/// What a verdict is about, for the playbooks.
struct Seen {
    device: DeviceId,
    at: Timestamp,
    cloned: bool,
    window: bool,
}

impl Judge {
    /// Judges `w` of a device in `state`, quarantined by the playbook `quarantined_by` if one did (an
    /// operator's quarantine is not the playbooks' to lift, so it is not passed), then learns from it.
    pub(crate) fn judge(
        &mut self,
        w: &TrafficWindow,
        state: &DeviceState,
        quarantined_by: Option<&str>,
    ) -> (Verdict, Vec<Directive>) {
        let verdict = self.engine.observe(w, state);
        let seen = Seen {
            device: w.device,
            at: w.end,
            cloned: w.sessions > 1,
            window: true,
        };
        let directives = self.respond(&verdict, state, quarantined_by, &seen);
        (verdict, directives)
    }

    /// Judges what discovery saw the device do at `now`, like [`Judge::judge`] a window; `None` for a
    /// sighting judged already.
    pub(crate) fn sight(
        &mut self,
        s: &NetworkSighting,
        state: &DeviceState,
        at: &Whereabouts<'_>,
        quarantined_by: Option<&str>,
        now: Timestamp,
    ) -> Option<(Verdict, Vec<Directive>)> {
        let verdict = self.engine.sight(s, state, at, now)?;
        let seen = Seen {
            device: s.device,
            at: verdict.at,
            cloned: false,
            window: false,
        };
        let directives = self.respond(&verdict, state, quarantined_by, &seen);
        Some((verdict, directives))
    }

    fn respond(
        &mut self,
        verdict: &Verdict,
        state: &DeviceState,
        quarantined_by: Option<&str>,
        seen: &Seen,
    ) -> Vec<Directive> {
        let situation = Situation {
            trust: verdict.assessment.score.get(),
            anomalous: verdict.anomalous(),
            cloned: seen.cloned,
            out_of_zone: state.out_of_zone.is_some(),
            firmware: state.firmware,
            quarantined_by: quarantined_by.map(str::to_owned),
            revoked: state.identity == IdentityState::Revoked,
            reasons: verdict
                .assessment
                .reasons
                .iter()
                .map(ToString::to_string)
                .collect(),
            window: seen.window,
        };
        self.responder.decide(seen.device, &situation, seen.at)
    }
}
