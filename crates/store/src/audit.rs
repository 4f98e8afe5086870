//! Verifying the whole event log, the same way on every backend: its hash chain ([`verify_audit`]); and, in
//! [`verify_audit_full`], the token and policy tables against the state the log implies ([`Replay`]) and the
//! log against signed checkpoints of its head, which catch what the chain alone cannot (a removed tail with a
//! rewritten head, an edit with every later hash recomputed).

use std::collections::BTreeMap;

use vouch_events::{ChainBreak, ChainVerifier, Checkpoint, Digest, Event, EventSeq};
use vouch_types::{PolicyId, Timestamp};

use crate::replay::{LiveTables, Replay, StateReport};
use crate::{Result, Store};

/// What a walk of the audit log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// How many events were checked before the walk ended.
    pub verified: u64,
    /// The first break, if the log was tampered with.
    pub first_break: Option<ChainBreak>,
}

impl AuditReport {
    /// Whether the log is intact.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Walks the whole log in pages and reports the first event that was altered, removed or reordered.
pub async fn verify_audit(store: &dyn Store) -> Result<AuditReport> {
    const PAGE: u32 = 10_000;
    // Read the head first: appends that land during the walk are after it and are not checked this time.
    let head = store.audit_head().await?;
    let mut verifier = ChainVerifier::new();
    let mut verified = 0;
    let mut after: Option<EventSeq> = None;
    loop {
        let page = store.events(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        for e in &page {
            if head.is_some_and(|(h, _)| e.seq > h) {
                break;
            }
            if let Err(b) = verifier.push(e) {
                return Ok(AuditReport {
                    verified,
                    first_break: Some(b),
                });
            }
            verified += 1;
        }
        if head.is_some_and(|(h, _)| last.seq >= h) {
            break;
        }
    }
    Ok(AuditReport {
        verified,
        first_break: verifier.finish(head).err(),
    })
}

/// Events read per page by a walk.
const PAGE: u32 = 10_000;

/// What a walk saw at a position a checkpoint names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    /// The stored event's hash.
    hash: Digest,
    /// The replayed token and policy digests after it, if the chain was intact up to it.
    state: Option<(Digest, Digest)>,
}

/// A walk of the log that can be resumed as it grows: the hash chain checked event by event, the token and
/// policy events replayed, and what stood at the positions of the checkpoints it was asked to watch. The
/// checkpoint writer keeps one for its whole life, so each checkpoint costs only the events since the last.
#[derive(Debug, Default)]
pub struct AuditWalk {
    verifier: ChainVerifier,
    replay: Replay,
    /// The last event that verified.
    last: Option<(EventSeq, Digest)>,
    /// The last event read (past a break, reading goes on for the watched positions).
    cursor: Option<EventSeq>,
    verified: u64,
    broken: Option<ChainBreak>,
    marks: BTreeMap<EventSeq, Option<Mark>>,
}

impl AuditWalk {
    /// A walk at the start of the log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records what stands at `seq` when the walk passes it: call before it does, or when `seq` is the
    /// verified head (a checkpoint just signed).
    pub fn watch(&mut self, seq: EventSeq) {
        let now = match self.last {
            Some((s, hash)) if s == seq && self.broken.is_none() => Some(Mark {
                hash,
                state: Some(self.replay.digests()),
            }),
            _ => None,
        };
        let slot = self.marks.entry(seq).or_insert(None);
        if slot.is_none() {
            *slot = now;
        }
    }

    /// Checks the next stored event (events must come in the order the store returns them).
    pub fn push(&mut self, e: &Event) {
        self.cursor = Some(e.seq);
        if self.broken.is_none() {
            match self.verifier.push(e) {
                Ok(()) => {
                    self.last = Some((e.seq, e.hash));
                    self.verified += 1;
                    self.replay.apply(e);
                }
                Err(b) => self.broken = Some(b),
            }
        }
        if let Some(slot) = self.marks.get_mut(&e.seq) {
            let state = if self.broken.is_none() {
                Some(self.replay.digests())
            } else {
                None
            };
            *slot = Some(Mark {
                hash: e.hash,
                state,
            });
        }
    }

    /// Reads and checks the events after the last one read, up to `until` (to the end of the log if `None`).
    pub async fn advance(&mut self, store: &dyn Store, until: Option<EventSeq>) -> Result<()> {
        loop {
            if let (Some(u), Some(c)) = (until, self.cursor)
                && c >= u
            {
                return Ok(());
            }
            let page = store.events(self.cursor, PAGE).await?;
            for e in &page {
                if until.is_some_and(|u| e.seq > u) {
                    return Ok(());
                }
                self.push(e);
            }
            if page.len() < PAGE as usize {
                return Ok(());
            }
        }
    }

    /// The last event that verified (the head a checkpoint may sign).
    pub fn head(&self) -> Option<(EventSeq, Digest)> {
        self.last
    }

    /// How many events verified.
    pub fn verified(&self) -> u64 {
        self.verified
    }

    /// The first break in the chain, if the walk met one.
    pub fn broken(&self) -> Option<&ChainBreak> {
        self.broken.as_ref()
    }

    /// The state the events so far imply.
    pub fn replay(&self) -> &Replay {
        &self.replay
    }

    /// A checkpoint of the verified head at `at`; `None` on an empty log or after a break (a broken chain is
    /// never signed).
    pub fn checkpoint(&mut self, at: Timestamp) -> Option<Checkpoint> {
        if self.broken.is_some() {
            return None;
        }
        let (seq, hash) = self.last?;
        let (tokens, policies) = self.replay.digests();
        Some(Checkpoint {
            seq,
            hash,
            at,
            tokens,
            policies,
        })
    }

    /// What the walk found at a checkpoint's position (watched with [`watch`](Self::watch) before the walk
    /// passed it).
    pub fn check(&self, c: &Checkpoint) -> CheckpointOutcome {
        match self.marks.get(&c.seq).copied().flatten() {
            None if self.cursor.is_none_or(|last| last < c.seq) => CheckpointOutcome::Truncated {
                last: self.cursor.unwrap_or(EventSeq(0)),
            },
            None => CheckpointOutcome::Missing,
            Some(m) if m.hash != c.hash => CheckpointOutcome::Rewritten {
                found: m.hash,
                since: None,
            },
            Some(Mark { state: None, .. }) => CheckpointOutcome::Matches,
            Some(Mark {
                state: Some((tokens, policies)),
                ..
            }) if tokens != c.tokens || policies != c.policies => CheckpointOutcome::StateDiffers {
                tokens: tokens != c.tokens,
                policies: policies != c.policies,
            },
            Some(_) => CheckpointOutcome::Matches,
        }
    }
}

/// How the log compares with one signed checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointOutcome {
    /// The event at the checkpoint's position still has the signed hash: nothing up to it changed.
    Matches,
    /// The log ends before the checkpoint's head: its newest events were removed (even if the recorded head
    /// was rewritten to match).
    Truncated {
        /// The last event the log holds (0: none).
        last: EventSeq,
    },
    /// The checkpoint's event is gone while later ones remain.
    Missing,
    /// The event at the checkpoint's position has another hash: the log was rewritten at or before it, with
    /// every later hash recomputed.
    Rewritten {
        /// The hash stored now.
        found: Digest,
        /// The newest earlier checkpoint that still matches, if any: the rewrite is after it.
        since: Option<EventSeq>,
    },
    /// The hash matches but the token or policy state the log implies there is not the one signed (a
    /// different replay rule, or a broken build): not evidence of tampering with the log, but not a pass.
    StateDiffers {
        /// The token digest differs.
        tokens: bool,
        /// The policy digest differs.
        policies: bool,
    },
}

/// One checkpoint and what the log showed against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointCheck {
    /// The checkpoint (its signature already verified by the caller).
    pub checkpoint: Checkpoint,
    /// What was found.
    pub outcome: CheckpointOutcome,
}

impl CheckpointCheck {
    /// Whether the log still holds what the checkpoint signed.
    pub fn matches(&self) -> bool {
        self.outcome == CheckpointOutcome::Matches
    }
}

impl std::fmt::Display for CheckpointCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.checkpoint;
        let signed = format!("the checkpoint of {} signed event {}", c.at, c.seq);
        match self.outcome {
            CheckpointOutcome::Matches => write!(f, "{signed}: the log matches it"),
            CheckpointOutcome::Truncated { last } if last.0 + 1 == c.seq.0 => write!(
                f,
                "log truncated: {signed}, but the log ends at event {last}: event {} was removed",
                c.seq
            ),
            CheckpointOutcome::Truncated { last } => write!(
                f,
                "log truncated: {signed}, but the log ends at event {last}: events {} to {} were removed",
                last.0 + 1,
                c.seq
            ),
            CheckpointOutcome::Missing => write!(
                f,
                "log edited: {signed}, which is no longer in the log (later events are)"
            ),
            CheckpointOutcome::Rewritten { found, since } => {
                write!(
                    f,
                    "log rewritten: {signed} with hash {}, the log's event {} has hash {}: events at or before \
                     it were edited and the chain recomputed",
                    short(&c.hash),
                    c.seq,
                    short(&found)
                )?;
                match since {
                    Some(s) => write!(
                        f,
                        " (after event {s}, which an earlier checkpoint still matches)"
                    ),
                    None => Ok(()),
                }
            }
            CheckpointOutcome::StateDiffers { tokens, policies } => {
                let what = match (tokens, policies) {
                    (true, true) => "tokens and policies",
                    (true, false) => "tokens",
                    _ => "policies",
                };
                write!(
                    f,
                    "{signed}: the event matches, but the {what} the log implies there are not the ones signed"
                )
            }
        }
    }
}

fn short(d: &Digest) -> String {
    let mut s = d.to_string();
    s.truncate(16);
    s
}

/// Everything a full audit found: the chain, the token and policy tables against the log, and the log
/// against signed checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditAnalysis {
    /// The hash chain, as [`verify_audit`] reports it.
    pub chain: AuditReport,
    /// The token and policy tables against the log; `None` when the chain is broken (its replay proves
    /// nothing) or the store kept changing under the comparison.
    pub state: Option<StateReport>,
    /// Why `state` is `None`.
    pub state_skipped: Option<String>,
    /// Each checkpoint given, in the order given.
    pub checkpoints: Vec<CheckpointCheck>,
}

impl AuditAnalysis {
    /// Whether nothing at all was found (what could not be checked is not a finding).
    pub fn is_clean(&self) -> bool {
        self.chain.is_intact()
            && self.state.as_ref().is_some_and(|s| s.findings.is_empty())
            && self.checkpoints.iter().all(CheckpointCheck::matches)
    }
}

/// The live tables the replay of `replay` is compared with.
async fn live_tables(store: &dyn Store, replay: &Replay) -> Result<LiveTables> {
    let tokens = store.list_tokens().await?;
    let mut ids: std::collections::BTreeSet<PolicyId> = replay.policy_ids().cloned().collect();
    ids.extend(store.policies().await?.into_iter().map(|p| p.id));
    let mut policies = BTreeMap::new();
    for id in ids {
        let history = store.policy_history(&id).await?;
        policies.insert(id, history);
    }
    Ok(LiveTables { tokens, policies })
}

/// The whole audit: walks the log (as [`verify_audit`] does), replays its token and policy events and compares
/// them with the live tables, and checks the log against `checkpoints` (whose signatures the caller verified):
/// a log that ends before a checkpoint's head, or whose event there has another hash, is named.
pub async fn verify_audit_full(
    store: &dyn Store,
    checkpoints: &[Checkpoint],
) -> Result<AuditAnalysis> {
    /// Attempts at reading the tables between two equal heads before giving up on a busy store.
    const ATTEMPTS: usize = 5;
    let seq_of = |h: Option<(EventSeq, Digest)>| h.map_or(EventSeq(0), |(s, _)| s);
    let mut walk = AuditWalk::new();
    for c in checkpoints {
        walk.watch(c.seq);
    }
    // To the end of the log, whatever its recorded head says: events past a lowered head are checked too, and
    // every checkpoint's position is reached if the log still holds it.
    walk.advance(store, None).await?;
    // Read after the events: every append moves the head in its own transaction, so a head behind the last
    // event read was rewritten (and `finish` names it), one ahead means appends since (read them).
    let mut head = store.audit_head().await?;
    let mut state = None;
    let mut state_skipped = None;
    for _ in 0..ATTEMPTS {
        let read = walk.cursor.unwrap_or(EventSeq(0));
        if read < seq_of(head) {
            walk.advance(store, None).await?;
            if walk.cursor.unwrap_or(EventSeq(0)) == read {
                break; // Nothing more to read: the log ends before its head, which `finish` names.
            }
            head = store.audit_head().await?;
            continue;
        }
        if walk.broken().is_some() || read > seq_of(head) {
            break;
        }
        // The tables are read between two reads of the head that agree: every change writes its rows and its
        // events in one transaction, so the tables then match the log up to that head.
        let tables = live_tables(store, walk.replay()).await?;
        let again = store.audit_head().await?;
        if again == head {
            state = Some(walk.replay().compare(&tables));
            break;
        }
        head = again;
    }
    let verified = walk.verified;
    let first_break = match walk.broken.take() {
        Some(b) => Some(b),
        None => std::mem::take(&mut walk.verifier).finish(head).err(),
    };
    if state.is_none() {
        state_skipped = Some(if first_break.is_some() {
            "the hash chain is broken: replaying it proves nothing".to_owned()
        } else {
            format!("the log kept growing during {ATTEMPTS} attempts to read the tables beside it")
        });
    }
    let mut checks: Vec<CheckpointCheck> = checkpoints
        .iter()
        .map(|c| CheckpointCheck {
            checkpoint: *c,
            outcome: walk.check(c),
        })
        .collect();
    // A rewrite lies after the newest checkpoint below it that still matches.
    let matching: Vec<EventSeq> = checks
        .iter()
        .filter(|c| c.matches())
        .map(|c| c.checkpoint.seq)
        .collect();
    for c in &mut checks {
        if let CheckpointOutcome::Rewritten { since, .. } = &mut c.outcome {
            *since = matching
                .iter()
                .copied()
                .filter(|s| *s < c.checkpoint.seq)
                .max();
        }
    }
    Ok(AuditAnalysis {
        chain: AuditReport {
            verified,
            first_break,
        },
        state,
        state_skipped,
        checkpoints: checks,
    })
}
