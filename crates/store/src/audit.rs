//! Verifying the whole event log against its hash chain, the same way on every backend.

use vouch_events::{ChainBreak, ChainVerifier, EventSeq};

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
