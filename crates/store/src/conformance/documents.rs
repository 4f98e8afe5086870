//! Conformance: compliance documents are kept whole, replaced by name, logged once per change.

use std::sync::Arc;

use vouch_events::Action;
use vouch_types::{DocumentKind, MAX_DOCUMENT_BYTES};

use super::change;
use crate::{Store, StoreError, verify_audit};

/// An import keeps the bytes and logs one event; the same bytes again write nothing; other bytes under the
/// same name replace them; a document of another kind under the same name is its own; empty and oversized
/// documents are refused with nothing written.
pub async fn documents_are_kept_replaced_and_logged(store: Arc<dyn Store>) {
    let key: vouch_types::DocumentKey = "acme-cam@1.2.0".parse().unwrap();
    let sbom = br#"{"bomFormat":"CycloneDX","specVersion":"1.6"}"#.to_vec();
    let first = store
        .put_document(
            DocumentKind::CycloneDxSbom,
            key.clone(),
            sbom.clone(),
            change(1),
        )
        .await
        .unwrap()
        .expect("a new document is written");
    assert_eq!(first.body, sbom);
    assert!(
        store
            .put_document(
                DocumentKind::CycloneDxSbom,
                key.clone(),
                sbom.clone(),
                change(2)
            )
            .await
            .unwrap()
            .is_none(),
        "the same bytes again write nothing"
    );
    let newer = br#"{"bomFormat":"CycloneDX","specVersion":"1.6","version":2}"#.to_vec();
    store
        .put_document(
            DocumentKind::CycloneDxSbom,
            key.clone(),
            newer.clone(),
            change(3),
        )
        .await
        .unwrap()
        .expect("other bytes replace the document");
    store
        .put_document(DocumentKind::Csaf, key.clone(), b"{}".to_vec(), change(4))
        .await
        .unwrap()
        .expect("another kind under the same name is its own document");
    for bad in [Vec::new(), vec![b' '; MAX_DOCUMENT_BYTES + 1]] {
        assert!(matches!(
            store
                .put_document(DocumentKind::Kev, "kev".parse().unwrap(), bad, change(5))
                .await,
            Err(StoreError::Invalid(_))
        ));
    }
    let all = store.documents(None).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].kind, DocumentKind::CycloneDxSbom);
    assert_eq!(all[0].body, newer);
    assert_eq!(all[0].imported_at, change(3).at);
    assert_eq!(all[1].kind, DocumentKind::Csaf);
    let sboms = store
        .documents(Some(DocumentKind::CycloneDxSbom))
        .await
        .unwrap();
    assert_eq!(sboms.len(), 1);
    assert!(
        store
            .documents(Some(DocumentKind::Kev))
            .await
            .unwrap()
            .is_empty()
    );
    let events = store.events(None, 100).await.unwrap();
    let imports: Vec<_> = events
        .iter()
        .filter(|e| e.draft.action == Action::DocumentImported)
        .collect();
    assert_eq!(
        imports.len(),
        3,
        "one event per write that changed something"
    );
    let logged: vouch_events::DocumentLogged = imports[1].payload().unwrap();
    assert_eq!(logged.key, key);
    assert_eq!(logged.bytes, newer.len() as u64);
    assert_eq!(logged.digest.0, all[0].digest);
    assert!(verify_audit(&*store).await.unwrap().is_intact());
}
