//! One window judged: the engine's verdict and the playbooks' directives, from what is known of the device.
//! The live service ([`crate::TrustService`]) and the offline replay ([`crate::replay`]) both go through
//! [`judge`], so a recorded window scores the same whichever path it takes.

use vouch_trust::{
    DeviceState, Directive, IdentityState, Responder, Situation, TrustEngine, Verdict,
};
use vouch_types::TrafficWindow;

/// The models a trust service holds.
#[derive(Debug, Clone)]
pub(crate) struct Judge {
    /// Baselines, class models and penalty memory.
    pub engine: TrustEngine,
    /// The playbooks and their per-device memory.
    pub responder: Responder,
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
        let situation = Situation {
            trust: verdict.assessment.score.get(),
            anomalous: verdict.anomalous(),
            cloned: w.sessions > 1,
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
        };
        let directives = self.responder.decide(w.device, &situation, w.end);
        (verdict, directives)
    }
}
