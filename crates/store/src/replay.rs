//! The operators' tokens and the stored policies as the event log says they are, and where the live tables
//! disagree.
//!
//! Token and policy changes are written with their events in one transaction, and the hash chain covers the
//! events, not the rows. Replaying the chain's token and policy events gives the state the tables must hold;
//! a row that differs (a role raised to admin, a revocation undone, a policy's text widened, a swapped secret
//! hash) was changed outside Vouch. The rule is the same for every backend, so it lives here.
//!
//! Why one long file: the replay of token and policy events and its comparison with the live tables are one
//! rule (what the log implies, and where the tables differ), with its findings' types; a sixth of it is tests.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sha2::{Digest as _, Sha256};
use vouch_events::{Action, Digest, Event, EventSeq, PolicyLogged, TokenLogged};
use vouch_types::{PolicyId, PolicyRecord, Role, Timestamp, TokenId};

use crate::{TokenRecord, credential_digest};

/// A token as its events record it (written by `token_json` in `plan.rs`); fields added later are optional.
type LoggedToken = TokenLogged;

/// A token in the replayed state.
#[derive(Debug, Clone)]
struct ReplayedToken {
    logged: LoggedToken,
    /// The credential digest, if some event recorded one, and that event.
    credential: Option<(Digest, EventSeq)>,
    /// The event that last wrote it.
    seq: EventSeq,
}

/// A policy version as its event records it (written by `policy_json` in `policies.rs`).
type LoggedPolicy = PolicyLogged;

/// A policy version in the replayed state, with the author and time its event carries.
#[derive(Debug, Clone)]
struct ReplayedPolicy {
    logged: LoggedPolicy,
    author: String,
    at: Timestamp,
    seq: EventSeq,
}

/// A token field that the log and the database can disagree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenField {
    /// Who it was issued to.
    Operator,
    /// What it may do.
    Role,
    /// When it was issued.
    CreatedAt,
    /// When it expires.
    ExpiresAt,
    /// When it was revoked.
    RevokedAt,
}

impl fmt::Display for TokenField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Operator => "operator",
            Self::Role => "role",
            Self::CreatedAt => "creation time",
            Self::ExpiresAt => "expiry",
            Self::RevokedAt => "revocation",
        })
    }
}

/// A policy field that the log and the database can disagree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyField {
    /// The Cedar source.
    Text,
    /// Shadow or enforce.
    Mode,
    /// Whether the version removed the policy.
    Removed,
    /// Who wrote the version.
    Author,
    /// When.
    At,
}

impl fmt::Display for PolicyField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Mode => "mode",
            Self::Removed => "removed",
            Self::Author => "author",
            Self::At => "time",
        })
    }
}

/// A place where the token or policy tables are not what the event log says, or where the log contradicts
/// itself about them. Each is evidence of a change made outside Vouch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateFinding {
    /// A token row that no `token.created` event describes.
    TokenWithoutEvent {
        /// The token.
        id: TokenId,
        /// Its role in the database.
        role: Role,
    },
    /// A token the log created whose row is gone.
    TokenMissing {
        /// The token.
        id: TokenId,
        /// The event that last wrote it.
        seq: EventSeq,
    },
    /// A token field that differs between the database and the log.
    TokenDiffers {
        /// The token.
        id: TokenId,
        /// Which field.
        field: TokenField,
        /// Its value in the database.
        database: String,
        /// Its value in the log.
        log: String,
        /// The event that last wrote it.
        seq: EventSeq,
    },
    /// The stored secret hash is not the one the token's events record: someone swapped the credential.
    CredentialDiffers {
        /// The token.
        id: TokenId,
        /// The event that recorded the credential.
        seq: EventSeq,
    },
    /// A policy version in the database that no event describes.
    PolicyWithoutEvent {
        /// The policy.
        id: PolicyId,
        /// The version.
        version: u32,
    },
    /// A policy version the log wrote whose row is gone.
    PolicyVersionMissing {
        /// The policy.
        id: PolicyId,
        /// The version.
        version: u32,
        /// Its event.
        seq: EventSeq,
    },
    /// A policy version field that differs between the database and the log.
    PolicyDiffers {
        /// The policy.
        id: PolicyId,
        /// The version.
        version: u32,
        /// Which field.
        field: PolicyField,
        /// Its value in the database (for the text: a description of the difference).
        database: String,
        /// Its value in the log.
        log: String,
        /// The version's event.
        seq: EventSeq,
    },
    /// A later event found the record other than the log had left it: it was changed outside Vouch before
    /// that event (which then recorded the changed record as its `before`).
    ChangedBefore {
        /// The event that found it.
        seq: EventSeq,
        /// What (`token 0011…`, `policy own-topics`).
        subject: String,
        /// How it differed.
        what: String,
    },
    /// A token or policy event whose content does not read as one (or contradicts the log before it).
    UnreadableEvent {
        /// The event.
        seq: EventSeq,
        /// Why.
        why: String,
    },
}

impl fmt::Display for StateFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TokenWithoutEvent { id, role } => write!(
                f,
                "token {id} ({role}) is in the database, but no token.created event in the log issued it"
            ),
            Self::TokenMissing { id, seq } => write!(
                f,
                "token {id} is in the log (event {seq}) but missing from the database"
            ),
            Self::TokenDiffers {
                id,
                field: TokenField::RevokedAt,
                database,
                log,
                seq,
            } if database == "none" => write!(
                f,
                "token {id}: revoked in the log (at {log}, event {seq}), not revoked in the database: it works again"
            ),
            Self::TokenDiffers {
                id,
                field,
                database,
                log,
                seq,
            } => write!(
                f,
                "token {id}: {field} is {database} in the database, {log} in the log (event {seq})"
            ),
            Self::CredentialDiffers { id, seq } => write!(
                f,
                "token {id}: its secret hash in the database is not the one the log recorded (event {seq}): \
                 the credential was swapped"
            ),
            Self::PolicyWithoutEvent { id, version } => write!(
                f,
                "policy {id} version {version} is in the database, but no event in the log wrote it"
            ),
            Self::PolicyVersionMissing { id, version, seq } => write!(
                f,
                "policy {id} version {version} is in the log (event {seq}) but missing from the database"
            ),
            Self::PolicyDiffers {
                id,
                version,
                field: PolicyField::Text,
                database,
                seq,
                ..
            } => write!(
                f,
                "policy {id} version {version}: its text in the database is not the text in the log (event {seq}): {database}"
            ),
            Self::PolicyDiffers {
                id,
                version,
                field,
                database,
                log,
                seq,
            } => write!(
                f,
                "policy {id} version {version}: {field} is {database} in the database, {log} in the log (event {seq})"
            ),
            Self::ChangedBefore { seq, subject, what } => write!(
                f,
                "{subject} was changed outside Vouch before event {seq}, which found {what}"
            ),
            Self::UnreadableEvent { seq, why } => write!(f, "event {seq}: {why}"),
        }
    }
}

/// Something the log cannot vouch for either way: not a pass, not a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotCheckable {
    /// The token's events predate credential digests, so a swapped secret hash would not be seen.
    TokenCredential {
        /// The token.
        id: TokenId,
        /// The event that issued it.
        seq: EventSeq,
    },
}

impl fmt::Display for NotCheckable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TokenCredential { id, seq } => write!(
                f,
                "token {id}: its secret hash cannot be checked: it was issued (event {seq}) before the log \
                 recorded credential digests"
            ),
        }
    }
}

/// The live tables a [`Replay`] is compared with.
#[derive(Debug, Clone, Default)]
pub struct LiveTables {
    /// Every token ([`Store::list_tokens`](crate::Store::list_tokens)).
    pub tokens: Vec<TokenRecord>,
    /// Every version of every policy the log or the database knows of
    /// ([`Store::policy_history`](crate::Store::policy_history)).
    pub policies: BTreeMap<PolicyId, Vec<PolicyRecord>>,
}

/// What comparing the live tables with the log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateReport {
    /// How many tokens the log knows of.
    pub tokens: usize,
    /// How many policies the log knows of (removed ones included).
    pub policies: usize,
    /// Every disagreement, each naming what differs.
    pub findings: Vec<StateFinding>,
    /// What could not be checked.
    pub not_checkable: Vec<NotCheckable>,
}

/// The state the chain's token and policy events imply, built event by event.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    tokens: BTreeMap<TokenId, ReplayedToken>,
    policies: BTreeMap<PolicyId, Vec<ReplayedPolicy>>,
    /// Contradictions found in the log itself (reported with the comparison).
    problems: Vec<StateFinding>,
    /// Digests of the state, computed on demand and dropped on every change.
    digests: Option<(Digest, Digest)>,
}

impl Replay {
    /// An empty state (the start of the log).
    pub fn new() -> Self {
        Self::default()
    }

    /// The policy ids the log knows of.
    pub fn policy_ids(&self) -> impl Iterator<Item = &PolicyId> {
        self.policies.keys()
    }

    /// Applies the next event of the chain (events about anything else are ignored).
    pub fn apply(&mut self, e: &Event) {
        match e.draft.action {
            Action::TokenCreated | Action::TokenRevoked => self.token_event(e),
            Action::PolicyAdded
            | Action::PolicyUpdated
            | Action::PolicyModeChanged
            | Action::PolicyRemoved => self.policy_event(e),
            _ => return,
        }
        self.digests = None;
    }

    fn problem(&mut self, seq: EventSeq, why: String) {
        self.problems
            .push(StateFinding::UnreadableEvent { seq, why });
    }

    fn token_event(&mut self, e: &Event) {
        let after: LoggedToken = match e.payload() {
            Ok(t) => t,
            Err(err) => {
                let why = format!("{}: the token does not read: {err}", e.draft.action);
                return self.problem(e.seq, why);
            }
        };
        let credential = after.credential.map(|d| (d, e.seq));
        let id = after.id;
        if e.draft.action == Action::TokenCreated {
            if let Some(prev) = self.tokens.get(&id) {
                let why = format!("token {id} is created again (first by event {})", prev.seq);
                return self.problem(e.seq, why);
            }
            self.tokens.insert(
                id,
                ReplayedToken {
                    logged: after,
                    credential,
                    seq: e.seq,
                },
            );
            return;
        }
        let Some(current) = self.tokens.get(&id).cloned() else {
            let why = format!("revokes token {id}, which no earlier event created");
            return self.problem(e.seq, why);
        };
        // The revocation recorded the row as it found it: it must be what the log had left.
        if let Ok(before) = e.payload_before::<LoggedToken>() {
            let diff = token_diff(&current.logged, &before);
            if !diff.is_empty() {
                self.problems.push(StateFinding::ChangedBefore {
                    seq: e.seq,
                    subject: format!("token {id}"),
                    what: diff.join(", "),
                });
            }
        }
        let credential = match (current.credential, credential) {
            (Some((was, at)), Some((now, _))) if was != now => {
                self.problems.push(StateFinding::ChangedBefore {
                    seq: e.seq,
                    subject: format!("token {id}"),
                    what: format!(
                        "another secret hash than the one event {at} recorded: the credential was swapped"
                    ),
                });
                Some((was, at))
            }
            (Some(c), _) => Some(c),
            (None, c) => c,
        };
        self.tokens.insert(
            id,
            ReplayedToken {
                logged: after,
                credential,
                seq: e.seq,
            },
        );
    }

    fn policy_event(&mut self, e: &Event) {
        let after: LoggedPolicy = match e.payload() {
            Ok(p) => p,
            Err(err) => {
                let why = format!("{}: the policy does not read: {err}", e.draft.action);
                return self.problem(e.seq, why);
            }
        };
        let versions = self.policies.entry(after.id.clone()).or_default();
        let expected = versions.last().map_or(1, |v| v.logged.version + 1);
        if after.version != expected {
            let why = format!(
                "policy {} jumps to version {} where version {expected} was next",
                after.id, after.version
            );
            return self.problem(e.seq, why);
        }
        // The write recorded the live version as it found it: it must be what the log had left.
        let live = versions.last().filter(|v| !v.logged.removed);
        if let (Some(live), Ok(before)) = (live, e.payload_before::<LoggedPolicy>()) {
            let diff = policy_diff(&live.logged, &before);
            if !diff.is_empty() {
                let (seq, subject) = (e.seq, format!("policy {}", after.id));
                self.problems.push(StateFinding::ChangedBefore {
                    seq,
                    subject,
                    what: diff.join(", "),
                });
            }
        }
        let versions = self.policies.entry(after.id.clone()).or_default();
        versions.push(ReplayedPolicy {
            logged: after,
            author: e.draft.actor.to_string(),
            at: e.at,
            seq: e.seq,
        });
    }

    /// Digests of the token state and the policy state, as a checkpoint carries them: SHA-256 over a
    /// length-prefixed encoding of every token (id order: id, operator, role, times, credential digest) and of
    /// every policy version (id then version order: id, version, mode, removed, author, time, text).
    pub fn digests(&mut self) -> (Digest, Digest) {
        if let Some(d) = self.digests {
            return d;
        }
        let mut t = Sha256::new();
        t.update(b"vouch-token-state-v1");
        for tok in self.tokens.values() {
            let l = &tok.logged;
            field(&mut t, Some(&l.id.to_bytes()[..]));
            field(&mut t, Some(l.operator.as_str().as_bytes()));
            field(&mut t, Some(l.role.as_str().as_bytes()));
            let micros = |x: Timestamp| x.unix_micros().to_be_bytes();
            field(&mut t, Some(&micros(l.created_at)[..]));
            field(&mut t, l.expires_at.map(micros).as_ref().map(|b| &b[..]));
            field(&mut t, l.revoked_at.map(micros).as_ref().map(|b| &b[..]));
            field(&mut t, tok.credential.as_ref().map(|(d, _)| &d.0[..]));
        }
        let mut p = Sha256::new();
        p.update(b"vouch-policy-state-v1");
        for v in self.policies.values().flatten() {
            let l = &v.logged;
            field(&mut p, Some(l.id.as_str().as_bytes()));
            field(&mut p, Some(&l.version.to_be_bytes()[..]));
            field(&mut p, Some(l.mode.as_str().as_bytes()));
            field(&mut p, Some(&[u8::from(l.removed)]));
            field(&mut p, Some(v.author.as_bytes()));
            field(&mut p, Some(&v.at.unix_micros().to_be_bytes()[..]));
            field(&mut p, Some(l.text.as_bytes()));
        }
        let d = (Digest(t.finalize().into()), Digest(p.finalize().into()));
        self.digests = Some(d);
        d
    }

    /// Compares the replayed state with the live tables and names every difference.
    pub fn compare(&self, live: &LiveTables) -> StateReport {
        let mut findings = self.problems.clone();
        let mut not_checkable = Vec::new();
        let mut seen = BTreeSet::new();
        for row in &live.tokens {
            seen.insert(row.id);
            let Some(tok) = self.tokens.get(&row.id) else {
                findings.push(StateFinding::TokenWithoutEvent {
                    id: row.id,
                    role: row.role,
                });
                continue;
            };
            let l = &tok.logged;
            let opt = |t: Option<Timestamp>| t.map_or_else(|| "none".to_owned(), |t| t.to_string());
            let fields = [
                (
                    TokenField::Operator,
                    row.operator.as_str().to_owned(),
                    l.operator.as_str().to_owned(),
                ),
                (
                    TokenField::Role,
                    row.role.as_str().to_owned(),
                    l.role.as_str().to_owned(),
                ),
                (
                    TokenField::CreatedAt,
                    row.created_at.to_string(),
                    l.created_at.to_string(),
                ),
                (
                    TokenField::ExpiresAt,
                    opt(row.expires_at),
                    opt(l.expires_at),
                ),
                (
                    TokenField::RevokedAt,
                    opt(row.revoked_at),
                    opt(l.revoked_at),
                ),
            ];
            for (field, database, log) in fields {
                if database != log {
                    findings.push(StateFinding::TokenDiffers {
                        id: row.id,
                        field,
                        database,
                        log,
                        seq: tok.seq,
                    });
                }
            }
            match tok.credential {
                Some((d, seq)) if d != credential_digest(&row.secret_hash) => {
                    findings.push(StateFinding::CredentialDiffers { id: row.id, seq });
                }
                Some(_) => {}
                None => not_checkable.push(NotCheckable::TokenCredential {
                    id: row.id,
                    seq: tok.seq,
                }),
            }
        }
        for (id, tok) in &self.tokens {
            if !seen.contains(id) {
                findings.push(StateFinding::TokenMissing {
                    id: *id,
                    seq: tok.seq,
                });
            }
        }
        let empty = Vec::new();
        let ids: BTreeSet<&PolicyId> = self.policies.keys().chain(live.policies.keys()).collect();
        for id in ids {
            let logged = self.policies.get(id).unwrap_or(&empty);
            let rows = live.policies.get(id).map_or(&[][..], Vec::as_slice);
            compare_policy(id, logged, rows, &mut findings);
        }
        StateReport {
            tokens: self.tokens.len(),
            policies: self.policies.len(),
            findings,
            not_checkable,
        }
    }
}

fn compare_policy(
    id: &PolicyId,
    logged: &[ReplayedPolicy],
    rows: &[PolicyRecord],
    findings: &mut Vec<StateFinding>,
) {
    let by_version: BTreeMap<u32, &ReplayedPolicy> =
        logged.iter().map(|v| (v.logged.version, v)).collect();
    let mut seen = BTreeSet::new();
    for row in rows {
        seen.insert(row.version);
        let Some(v) = by_version.get(&row.version) else {
            findings.push(StateFinding::PolicyWithoutEvent {
                id: id.clone(),
                version: row.version,
            });
            continue;
        };
        let l = &v.logged;
        let differs = |field, database: String, log: String| StateFinding::PolicyDiffers {
            id: id.clone(),
            version: row.version,
            field,
            database,
            log,
            seq: v.seq,
        };
        if row.text != l.text {
            findings.push(differs(
                PolicyField::Text,
                describe_text_difference(&row.text, "in the database", &l.text),
                String::new(),
            ));
        }
        let fields = [
            (
                PolicyField::Mode,
                row.mode.as_str().to_owned(),
                l.mode.as_str().to_owned(),
            ),
            (
                PolicyField::Removed,
                row.removed.to_string(),
                l.removed.to_string(),
            ),
            (
                PolicyField::Author,
                row.author.to_string(),
                v.author.clone(),
            ),
            (PolicyField::At, row.at.to_string(), v.at.to_string()),
        ];
        for (field, database, log) in fields {
            if database != log {
                findings.push(differs(field, database, log));
            }
        }
    }
    for (version, v) in by_version {
        if !seen.contains(&version) {
            findings.push(StateFinding::PolicyVersionMissing {
                id: id.clone(),
                version,
                seq: v.seq,
            });
        }
    }
}

/// How two policy texts differ, in words an operator can act on without the texts themselves.
fn describe_text_difference(found: &str, where_found: &str, log: &str) -> String {
    let at = found
        .bytes()
        .zip(log.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| found.len().min(log.len()));
    let line = log.get(..at).map_or(1, |s| s.matches('\n').count() + 1);
    format!(
        "{} bytes {where_found}, {} in the log, first different at byte {at} (line {line})",
        found.len(),
        log.len()
    )
}

/// How a later event's `before` differs from the replayed token, field by field.
fn token_diff(logged: &LoggedToken, found: &LoggedToken) -> Vec<String> {
    let opt = |t: Option<Timestamp>| t.map_or_else(|| "none".to_owned(), |t| t.to_string());
    let mut out = Vec::new();
    let mut cmp = |field: TokenField, log: String, found: String| {
        if log != found {
            out.push(format!("{field} {found} where the log had {log}"));
        }
    };
    cmp(
        TokenField::Operator,
        logged.operator.as_str().to_owned(),
        found.operator.as_str().to_owned(),
    );
    cmp(
        TokenField::Role,
        logged.role.as_str().to_owned(),
        found.role.as_str().to_owned(),
    );
    cmp(
        TokenField::CreatedAt,
        logged.created_at.to_string(),
        found.created_at.to_string(),
    );
    cmp(
        TokenField::ExpiresAt,
        opt(logged.expires_at),
        opt(found.expires_at),
    );
    cmp(
        TokenField::RevokedAt,
        opt(logged.revoked_at),
        opt(found.revoked_at),
    );
    out
}

/// How a later event's `before` differs from the replayed policy version.
fn policy_diff(logged: &LoggedPolicy, found: &LoggedPolicy) -> Vec<String> {
    let mut out = Vec::new();
    if logged.version != found.version {
        out.push(format!(
            "version {} where the log had {}",
            found.version, logged.version
        ));
    }
    if logged.mode != found.mode {
        out.push(format!(
            "mode {} where the log had {}",
            found.mode, logged.mode
        ));
    }
    if logged.text != found.text {
        out.push(format!(
            "another text ({})",
            describe_text_difference(&found.text, "then", &logged.text)
        ));
    }
    out
}

/// One length-prefixed field of a state digest (0 for none, 1 + length + bytes otherwise).
fn field(h: &mut Sha256, v: Option<&[u8]>) {
    match v {
        None => h.update([0u8]),
        Some(b) => {
            h.update([1u8]);
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_events::EventDraft;
    use vouch_types::Actor;
    use vouch_types::OperatorName;

    fn event(seq: u64, action: Action, before: Option<String>, after: String) -> Event {
        EventDraft {
            device_id: None,
            actor: Actor::Cli("t".into()),
            action,
            before,
            after: Some(after),
            reason: None,
        }
        .seal(
            EventSeq(seq),
            Timestamp::from_unix_micros(seq as i64),
            Digest::GENESIS,
        )
    }

    fn row(hash: u8) -> TokenRecord {
        TokenRecord {
            id: TokenId::from_bytes([1; 8]),
            operator: OperatorName::try_from("ada".to_owned()).unwrap(),
            role: Role::Auditor,
            secret_hash: [hash; 32],
            created_at: Timestamp::from_unix_micros(5),
            expires_at: None,
            revoked_at: None,
        }
    }

    fn json(t: &TokenRecord, credential: bool) -> String {
        let mut v = serde_json::json!({
            "id": t.id, "operator": t.operator, "role": t.role, "created_at": t.created_at,
            "expires_at": t.expires_at, "revoked_at": t.revoked_at,
        });
        if credential {
            v["credential"] = serde_json::json!(credential_digest(&t.secret_hash));
        }
        v.to_string()
    }

    #[test]
    fn tokens_issued_before_credential_digests_are_not_checkable_not_passed() {
        let mut r = Replay::new();
        r.apply(&event(1, Action::TokenCreated, None, json(&row(1), false)));
        let live = LiveTables {
            tokens: vec![row(2)],
            ..LiveTables::default()
        };
        let report = r.compare(&live);
        assert!(report.findings.is_empty(), "{report:?}");
        assert_eq!(
            report.not_checkable,
            vec![NotCheckable::TokenCredential {
                id: row(1).id,
                seq: EventSeq(1)
            }]
        );
        assert!(
            report.not_checkable[0]
                .to_string()
                .contains("cannot be checked")
        );
    }

    #[test]
    fn a_credential_swapped_before_a_revocation_is_named() {
        let mut r = Replay::new();
        r.apply(&event(1, Action::TokenCreated, None, json(&row(1), true)));
        let swapped = row(2);
        let revoked = TokenRecord {
            revoked_at: Some(Timestamp::from_unix_micros(9)),
            ..swapped.clone()
        };
        r.apply(&event(
            2,
            Action::TokenRevoked,
            Some(json(&swapped, true)),
            json(&revoked, true),
        ));
        let report = r.compare(&LiveTables {
            tokens: vec![revoked],
            ..LiveTables::default()
        });
        assert_eq!(report.findings.len(), 2, "{report:?}");
        assert!(matches!(
            report.findings[0],
            StateFinding::ChangedBefore {
                seq: EventSeq(2),
                ..
            }
        ));
        // The digest the creation recorded stays the reference.
        assert_eq!(
            report.findings[1],
            StateFinding::CredentialDiffers {
                id: row(1).id,
                seq: EventSeq(1)
            }
        );
    }

    #[test]
    fn contradictions_in_the_log_are_named() {
        let policy = |version: u32| {
            serde_json::json!({"id": "p", "version": version, "mode": "shadow", "removed": false, "text": "x"})
                .to_string()
        };
        let mut r = Replay::new();
        r.apply(&event(1, Action::PolicyAdded, None, policy(1)));
        r.apply(&event(2, Action::PolicyUpdated, Some(policy(1)), policy(3)));
        r.apply(&event(3, Action::TokenRevoked, None, json(&row(1), true)));
        r.apply(&event(4, Action::TokenCreated, None, "{\"id\": 7}".into()));
        let f: Vec<String> = r
            .compare(&LiveTables::default())
            .findings
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            f[0].starts_with("event 2: policy p jumps to version 3"),
            "{f:?}"
        );
        assert!(
            f[1].starts_with("event 3: revokes token 0101010101010101, which no"),
            "{f:?}"
        );
        assert!(
            f[2].starts_with("event 4: token.created: the token does not read"),
            "{f:?}"
        );
        assert!(
            f[3].starts_with("policy p version 1 is in the log (event 1) but missing"),
            "{f:?}"
        );
    }

    #[test]
    fn digests_follow_the_state_and_nothing_else() {
        let mut a = Replay::new();
        let before = a.digests();
        a.apply(&event(1, Action::TokenCreated, None, json(&row(1), true)));
        let after = a.digests();
        assert_ne!(before.0, after.0);
        assert_eq!(before.1, after.1);
        // The same state from another log position digests alike.
        let mut b = Replay::new();
        b.apply(&event(7, Action::TokenCreated, None, json(&row(1), true)));
        assert_eq!(b.digests(), after);
    }
}
