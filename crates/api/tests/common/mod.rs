//! The API in-process (tower `oneshot`) over a real SQLite store in a temporary directory, with a manual
//! clock, the first admin token, and the policy decision point: what the API's test files share.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use vouch_api::{AppState, Limits, auth, router};
use vouch_store::Store;
use vouch_store_sqlite::{Durability, SqliteStore};
use vouch_types::{Actor, Clock, ManualClock, Role, Timestamp};

/// The manual clock's start.
pub const NOW: i64 = 1_790_000_000_000_000;

/// The application and what stands behind it.
pub struct Harness {
    pub app: Router,
    /// The state behind `app` (its metrics, for serving it on a real listener).
    pub state: AppState,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    pub admin: String,
    pub decisions: Arc<vouch_api::decide::DecisionPoint>,
}

impl Harness {
    pub async fn new() -> Self {
        Self::with_limits(Limits::default()).await
    }

    pub async fn with_limits(limits: Limits) -> Self {
        let dir = tempfile::tempdir().unwrap().keep();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.join("vouch.db"), Durability::Normal).unwrap());
        let clock = Arc::new(ManualClock::new(Timestamp::from_unix_micros(NOW)));
        let admin = auth::bootstrap_admin(&*store, &*clock)
            .await
            .unwrap()
            .unwrap();
        assert!(
            auth::bootstrap_admin(&*store, &*clock)
                .await
                .unwrap()
                .is_none(),
            "bootstrap only once"
        );
        let decisions = vouch_api::decide::DecisionPoint::start(store.clone(), clock.clone(), None)
            .await
            .unwrap();
        let seal = Arc::new(vouch_api::totp::SealKey::generate().unwrap().0);
        let state = AppState::new(store.clone(), clock.clone(), decisions.clone(), seal);
        let app = router(state.clone(), limits);
        Self {
            app,
            state,
            store,
            clock,
            admin: admin.expose().to_owned(),
            decisions,
        }
    }

    /// A token for `role`, expiring `expires_in` µs from now if given.
    pub async fn token(&self, role: Role, expires_in: Option<i64>) -> String {
        let expires = expires_in.map(|us| self.clock.now().plus_micros(us));
        operator_token(&*self.store, &*self.clock, role, expires).await
    }

    /// A request with a JSON body; the status and the parsed answer.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, v) = self
            .call_full(method, uri, token, body.map(|b| b.to_string()), &[])
            .await;
        (status, v)
    }

    /// A request with a raw body and extra headers; status, headers and the parsed answer.
    pub async fn call_full(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body.map_or_else(Body::empty, Body::from)).unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, headers, v)
    }
}

/// An operator API token for `role` on `store`, expiring at `expires` if given, allowed to enroll a second
/// factor (as `vouch token create` on the host makes them).
pub async fn operator_token(
    store: &dyn Store,
    clock: &dyn Clock,
    role: Role,
    expires: Option<Timestamp>,
) -> String {
    let (record, secret) = auth::issue(
        store,
        clock,
        Actor::System("test".into()),
        format!("{role} operator").try_into().unwrap(),
        role,
        expires,
        None,
    )
    .await
    .unwrap();
    vouch_api::mfa::allow_enrollment(store, clock, record.id, Actor::System("test".into()), None)
        .await
        .unwrap();
    secret.expose().to_owned()
}
