//! The write rules every backend shares: what a change does to a record and which event records it.
//!
//! A backend reads the current row inside its transaction, asks these functions for the new row and the
//! event, and writes both. Keeping the rules here means SQLite and PostgreSQL cannot disagree about them.

use sha2::{Digest as _, Sha256};
use vouch_events::{Action, Digest, EventDraft, PAYLOAD_VERSION, Payload, TokenLogged};
use vouch_types::{Actor, Device, DevicePatch, DeviceState, NewDevice, Reason, Timestamp};

use crate::{StoreError, TokenRecord};

/// Who is making a change, why, and when: the context every write carries into the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Who acts.
    pub actor: Actor,
    /// Why, if they said.
    pub reason: Option<Reason>,
    /// When (from the injected clock).
    pub at: Timestamp,
}

/// A change to an existing device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEdit {
    /// Change attributes.
    Patch(Box<DevicePatch>),
    /// Move through the lifecycle.
    Transition(DeviceState),
}

/// The outcome of planning an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edited {
    /// The edit changes nothing: write nothing, log nothing.
    Unchanged,
    /// Write this record and append this event.
    Changed(Box<Device>, EventDraft),
}

/// The record and event for creating `new` (`imported` picks the event's action).
pub fn plan_create(
    new: NewDevice,
    change: &Change,
    imported: bool,
) -> Result<(Device, EventDraft), StoreError> {
    let device = new.into_device(change.at)?;
    let action = if imported {
        Action::DeviceImported
    } else {
        Action::DeviceCreated
    };
    let event = EventDraft::device(
        action,
        change.actor.clone(),
        None,
        &device,
        change.reason.clone(),
    )?;
    Ok((device, event))
}

/// The record and event for applying `edit` to `current`, after checking `expected_revision`.
pub fn plan_edit(
    current: &Device,
    edit: &DeviceEdit,
    expected_revision: Option<u64>,
    change: &Change,
) -> Result<Edited, StoreError> {
    if let Some(expected) = expected_revision
        && expected != current.revision
    {
        return Err(StoreError::RevisionMismatch {
            id: current.id.to_string(),
            expected,
            actual: current.revision,
        });
    }
    let (next, action) = match edit {
        DeviceEdit::Patch(p) => match current.patched(p, change.at)? {
            None => return Ok(Edited::Unchanged),
            Some(next) => (next, Action::DeviceUpdated),
        },
        DeviceEdit::Transition(to) => (
            current.transitioned(*to, change.at)?,
            Action::DeviceTransitioned,
        ),
    };
    let event = EventDraft::device(
        action,
        change.actor.clone(),
        Some(current),
        &next,
        change.reason.clone(),
    )?;
    Ok(Edited::Changed(Box::new(next), event))
}

/// What the event log records of a token's stored secret hash: SHA-256 over a domain tag and the hash. Never
/// the hash itself (it would let anyone who reads the log test guesses at the secret with one hash instead of
/// two; the secret is 256 random bits either way), but enough to notice the stored hash being swapped for
/// another, which would hand the token's role to whoever holds that other secret.
pub fn credential_digest(secret_hash: &[u8; 32]) -> Digest {
    let mut h = Sha256::new();
    h.update(b"vouch-token-credential-v1");
    h.update(secret_hash);
    Digest(h.finalize().into())
}

/// The public, secret-free view of a token that its events record (`credential`: see [`credential_digest`];
/// events written before it was added lack it).
fn token_json(t: &TokenRecord) -> String {
    let logged = TokenLogged {
        v: PAYLOAD_VERSION,
        id: t.id,
        operator: t.operator.clone(),
        role: t.role,
        created_at: t.created_at,
        expires_at: t.expires_at,
        revoked_at: t.revoked_at,
        credential: Some(credential_digest(&t.secret_hash)),
    };
    after(&logged)
}

/// A payload as an event's `after`. The payload types hold only strings, numbers and ids, which always
/// serialize; an empty object stands in should one ever fail, and the replay names it unreadable.
pub(crate) fn after<P: Payload>(p: &P) -> String {
    vouch_events::payload::to_after(p).unwrap_or_else(|_| "{}".to_owned())
}

/// The event for issuing `token`.
pub fn plan_token_created(token: &TokenRecord, change: &Change) -> EventDraft {
    EventDraft {
        device_id: None,
        actor: change.actor.clone(),
        action: Action::TokenCreated,
        before: None,
        after: Some(token_json(token)),
        reason: change.reason.clone(),
    }
}

/// The revoked record and its event, or `None` if `token` is revoked already.
pub fn plan_token_revoked(
    token: &TokenRecord,
    change: &Change,
) -> Option<(TokenRecord, EventDraft)> {
    if token.revoked_at.is_some() {
        return None;
    }
    let next = TokenRecord {
        revoked_at: Some(change.at),
        ..token.clone()
    };
    let event = EventDraft {
        device_id: None,
        actor: change.actor.clone(),
        action: Action::TokenRevoked,
        before: Some(token_json(token)),
        after: Some(token_json(&next)),
        reason: change.reason.clone(),
    };
    Some((next, event))
}
