//! The decision engine: a validated, compiled policy set, sliced per request, swapped atomically.
//!
//! Cedar evaluates every policy it is handed (about 0.8 µs each, see `notes/cedar-scaling.md`), so the engine
//! never hands it the whole set. Each compiled version carries an index by action and by the scope of the
//! principal and the resource; a request's candidates are the policies whose scope can match it, and only
//! those are evaluated. A policy whose scope cannot match the request is never satisfied and never errs, so
//! slicing cannot change a decision (property-tested in `tests/slicing.rs`).
//!
//! Why one long file: checking, compiling, the slicing index and deciding share the compiled set's private
//! representation (`Compiled`, the scope index, the entity builders); splitting them would make that
//! representation public to the crate for no reader's benefit.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;
use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision as CedarDecision, Effect, Entities, EntityId,
    EntityTypeName, EntityUid, Policy, PolicySet, PrincipalConstraint, Request, ResourceConstraint,
    Schema, ValidationMode, Validator,
};
use cedar_policy_core::ast;
use cedar_policy_core::entities::{Entities as CoreEntities, NoEntitiesSchema, TCComputation};
use cedar_policy_core::extensions::Extensions;
use serde::Serialize;
use smol_str::SmolStr;

/// The index's maps: looked up several times per decision, so hashed with foldhash rather than SipHash
/// (a tenth of a decision's instructions, measured with callgrind). Seeded per process, so the memo's
/// request-shaped keys cannot be aimed at collisions; the memo is bounded besides.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use vouch_types::{DeviceState, PolicyId, PolicyMode, PolicyRecord, Timestamp};

use crate::builtin;
use crate::grants::{GrantFilter, GrantIndex};
use crate::limits::{self, PolicyLimit, on_parser_stack};
use crate::request::{
    DeviceAction, DeviceContext, DeviceFacts, DeviceRequest, OperatorRequest, Resource,
};

const SCHEMA: &str = include_str!("vouch.cedarschema");
/// The built-in forbid that stops devices outside the active lifecycle states.
const LIFECYCLE_POLICY: &str = "vouch.devices.lifecycle";
/// The group a device in the `restricted` lifecycle state belongs to, whatever its record says.
pub use vouch_types::QUARANTINE_GROUP;
/// Candidate sets remembered per version before the memo starts over.
const MEMO_LIMIT: usize = 16_384;

/// One policy as the engine takes it: the stored text and its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySource {
    /// Its id.
    pub id: PolicyId,
    /// The Cedar source of exactly one policy.
    pub text: String,
    /// Shadow or enforce.
    pub mode: PolicyMode,
}

impl From<&PolicyRecord> for PolicySource {
    fn from(r: &PolicyRecord) -> Self {
        Self {
            id: r.id.clone(),
            text: r.text.clone(),
            mode: r.mode,
        }
    }
}

/// One reason a policy (or a set) was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyProblem {
    /// The policy concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// What is wrong, in Cedar's words where Cedar found it.
    pub message: String,
    /// The limit the text went past, when that is what is wrong (the text never reached Cedar).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<PolicyLimit>,
}

/// Why a policy set was refused: every problem found, not just the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.0))]
pub struct PolicyErrors(pub Vec<PolicyProblem>);

fn render(problems: &[PolicyProblem]) -> String {
    problems
        .iter()
        .map(|p| match &p.policy {
            Some(id) => format!("policy `{id}`: {}", p.message),
            None => p.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl PolicyErrors {
    pub(crate) fn one(policy: Option<&str>, message: impl Into<String>) -> Self {
        Self(vec![PolicyProblem {
            policy: policy.map(str::to_owned),
            message: message.into(),
            limit: None,
        }])
    }

    /// A text refused by the pre-scan, before Cedar saw it.
    pub(crate) fn limit(policy: Option<&str>, limit: PolicyLimit) -> Self {
        Self(vec![limit_problem(policy, limit)])
    }

    /// The same problems, each about policy `id`.
    pub fn for_policy(mut self, id: &str) -> Self {
        for p in &mut self.0 {
            p.policy = Some(id.to_owned());
        }
        self
    }

    /// The first limit a text went past, if that is why it was refused.
    pub fn first_limit(&self) -> Option<PolicyLimit> {
        self.0.iter().find_map(|p| p.limit)
    }
}

impl From<PolicyLimit> for PolicyErrors {
    fn from(limit: PolicyLimit) -> Self {
        Self::limit(None, limit)
    }
}

fn limit_problem(policy: Option<&str>, limit: PolicyLimit) -> PolicyProblem {
    PolicyProblem {
        policy: policy.map(str::to_owned),
        message: limit.to_string(),
        limit: Some(limit),
    }
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Whether the enforced policies allow it.
    pub allowed: bool,
    /// The policies that determined it (the permits that allowed it, or the forbids that denied it; empty
    /// when nothing permitted it).
    pub policies: Vec<String>,
    /// Errors met while evaluating (a policy that errs is skipped, as Cedar does).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// What the decision would be with the shadow-mode policies enforced too, when any applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowOutcome>,
    /// The policy-set version that decided.
    pub version: u64,
}

impl Decision {
    /// Allowed now, but shadow-mode policies would deny it.
    pub fn would_deny(&self) -> bool {
        self.allowed && self.shadow.as_ref().is_some_and(|s| !s.allowed)
    }

    /// Denied now, but shadow-mode policies would allow it.
    pub fn would_allow(&self) -> bool {
        !self.allowed && self.shadow.as_ref().is_some_and(|s| s.allowed)
    }

    /// Why, in a few words, for logs and answers.
    pub fn reason(&self) -> String {
        match (self.allowed, self.policies.is_empty()) {
            (true, _) => format!("allowed by {}", self.policies.join(", ")),
            (false, true) => "denied: no policy permits this".to_owned(),
            (false, false) => format!("denied by {}", self.policies.join(", ")),
        }
    }
}

/// The decision with the shadow-mode policies enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShadowOutcome {
    /// Whether it would be allowed.
    pub allowed: bool,
    /// The policies that would determine it.
    pub policies: Vec<String>,
}

/// Entity type names, parsed once.
struct Names {
    device: EntityTypeName,
    device_group: EntityTypeName,
    topic: EntityTypeName,
    topic_filter: EntityTypeName,
    service: EntityTypeName,
    asset: EntityTypeName,
    operator: EntityTypeName,
    role: EntityTypeName,
    fleet: EntityTypeName,
    action: EntityTypeName,
}

impl Names {
    fn new() -> Result<Self, PolicyErrors> {
        let n = |s: &str| {
            EntityTypeName::from_str(s)
                .map_err(|e| PolicyErrors::one(None, format!("entity type {s}: {e}")))
        };
        Ok(Self {
            device: n("Vouch::Device")?,
            device_group: n("Vouch::DeviceGroup")?,
            topic: n("Vouch::Topic")?,
            topic_filter: n("Vouch::TopicFilter")?,
            service: n("Vouch::Service")?,
            asset: n("Vouch::Asset")?,
            operator: n("Vouch::Operator")?,
            role: n("Vouch::Role")?,
            fleet: n("Vouch::Fleet")?,
            action: n("Vouch::Action")?,
        })
    }

    fn uid(&self, ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }
}

/// Where a policy's scope lets it apply.
#[derive(Debug, Clone)]
enum Scope {
    Any,
    Uid(EntityUid),
    Type(EntityTypeName),
}

fn principal_scope(c: PrincipalConstraint) -> Scope {
    match c {
        PrincipalConstraint::Any => Scope::Any,
        PrincipalConstraint::Eq(u)
        | PrincipalConstraint::In(u)
        | PrincipalConstraint::IsIn(_, u) => Scope::Uid(u),
        PrincipalConstraint::Is(t) => Scope::Type(t),
    }
}

fn resource_scope(c: ResourceConstraint) -> Scope {
    match c {
        ResourceConstraint::Any => Scope::Any,
        ResourceConstraint::Eq(u) | ResourceConstraint::In(u) | ResourceConstraint::IsIn(_, u) => {
            Scope::Uid(u)
        }
        ResourceConstraint::Is(t) => Scope::Type(t),
    }
}

/// Things filed by a scope: unconstrained, by entity (`==`, `in`), or by entity type (`is`).
struct Keyed<T> {
    any: T,
    by_uid: HashMap<EntityUid, T>,
    by_type: HashMap<EntityTypeName, T>,
}

impl<T: Default> Default for Keyed<T> {
    fn default() -> Self {
        Self {
            any: T::default(),
            by_uid: HashMap::default(),
            by_type: HashMap::default(),
        }
    }
}

impl<T: Default> Keyed<T> {
    fn at(&mut self, scope: &Scope) -> &mut T {
        match scope {
            Scope::Any => &mut self.any,
            Scope::Uid(u) => self.by_uid.entry(u.clone()).or_default(),
            Scope::Type(t) => self.by_type.entry(t.clone()).or_default(),
        }
    }

    /// Calls `f` with everything filed under a scope that `uid` (with `ancestors`) satisfies.
    fn each<'a>(&'a self, uid: &EntityUid, ancestors: &[EntityUid], mut f: impl FnMut(&'a T)) {
        f(&self.any);
        for u in std::iter::once(uid).chain(ancestors) {
            if let Some(t) = self.by_uid.get(u) {
                f(t);
            }
        }
        if let Some(t) = self.by_type.get(uid.type_name()) {
            f(t);
        }
    }
}

/// Policies filed by the principal part of their scope, then by the resource part.
type Slot = Keyed<Keyed<Vec<u32>>>;

fn collect(
    slot: &Slot,
    principal: (&EntityUid, &[EntityUid]),
    resource: (&EntityUid, &[EntityUid]),
    out: &mut Vec<u32>,
) {
    slot.each(principal.0, principal.1, |by_resource| {
        by_resource.each(resource.0, resource.1, |v| out.extend_from_slice(v));
    });
}

struct Entry {
    policy: Policy,
    mode: PolicyMode,
}

/// The policies evaluated for one shape of request.
struct Sliced {
    enforce: PolicySet,
    /// Enforce and shadow together; `None` when no shadow policy is among the candidates.
    all: Option<PolicySet>,
    /// The shadow policies among the candidates.
    shadow_ids: Vec<String>,
}

/// A policy-set version, validated and indexed. Built once per version, then only read.
pub struct Compiled {
    version: u64,
    entries: Vec<Entry>,
    by_action: HashMap<EntityUid, Slot>,
    any_action: Slot,
    grants: GrantIndex,
    grant_uids: Vec<EntityUid>,
    memo: RwLock<HashMap<Box<[u32]>, Arc<Sliced>>>,
    stored: usize,
    /// Where the built-in lifecycle forbid sits: it cannot hold for an active or restricted device, so it
    /// is left out of such a device's candidates (Cedar would evaluate it on every request otherwise).
    lifecycle: Option<u32>,
}

impl Compiled {
    /// The version this set was compiled for.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// How many stored (non-built-in) policies it holds.
    pub fn stored_policies(&self) -> usize {
        self.stored
    }

    /// How many topic grants its policies name.
    pub fn grants(&self) -> usize {
        self.grants.len()
    }
}

/// The policy engine: the schema, and the compiled set that decisions use.
pub struct Engine {
    schema: Schema,
    names: Names,
    /// Each action's ancestors in the schema's action hierarchy, for `action in [...]` scopes.
    action_groups: HashMap<EntityUid, Vec<EntityUid>>,
    current: ArcSwap<Compiled>,
    authorizer: Authorizer,
    /// Decide every request with the whole set too and check the answers agree (tests only).
    check_slicing: bool,
}

impl Engine {
    /// An engine holding only Vouch's built-in policies (version 0).
    pub fn new() -> Result<Self, PolicyErrors> {
        let (schema, _warnings) = Schema::from_cedarschema_str(SCHEMA)
            .map_err(|e| PolicyErrors::one(None, format!("Vouch's schema: {e}")))?;
        let names = Names::new()?;
        let mut action_groups: HashMap<EntityUid, Vec<EntityUid>> = HashMap::default();
        if let Ok(actions) = schema.action_entities() {
            for a in actions.iter() {
                let ancestors: Vec<EntityUid> = actions
                    .ancestors(&a.uid())
                    .map(|it| it.cloned().collect())
                    .unwrap_or_default();
                action_groups.insert(a.uid(), ancestors);
            }
        }
        let mut engine = Self {
            schema,
            names,
            action_groups,
            current: ArcSwap::from_pointee(Compiled::empty()),
            authorizer: Authorizer::new(),
            check_slicing: false,
        };
        let base = engine.compile(&[], 0)?;
        engine.current = ArcSwap::from_pointee(base);
        Ok(engine)
    }

    /// Makes every decision also evaluate the whole set and record a disagreement as an error (for tests
    /// that prove slicing changes nothing; doubles the cost).
    pub fn with_slicing_check(mut self) -> Self {
        self.check_slicing = true;
        self
    }

    /// Vouch's Cedar schema, as text.
    pub fn schema_text() -> &'static str {
        SCHEMA
    }

    /// Checks `sources` as a complete stored set: each parses as one policy with its id, names only
    /// entity types, attributes and actions the schema knows (strict validation, Cedar's diagnostics), grants
    /// only well-formed topic filters, and a `permit` names device principals only (operators are governed
    /// by the built-in policies).
    ///
    /// Each text is pre-scanned first ([`crate::limits`]) and refused past a limit without reaching Cedar;
    /// Cedar then parses, validates and compiles on a thread with a large stack of its own.
    pub fn check(&self, sources: &[PolicySource]) -> Result<(), PolicyErrors> {
        on_parser_stack(|| self.build(sources, 0).map(|_| ()))?
    }

    /// Checks a text of candidate policies (each with `@id`) the way `POST /api/v1/policies/validate` and
    /// `vouch policy validate` do: pre-scanned and split ([`split_policies`]), then checked as the set they
    /// make with `stored` (a candidate replaces the stored policy with its id). Returns the candidates.
    pub fn check_text(
        &self,
        stored: &[PolicySource],
        text: &str,
        mode: PolicyMode,
    ) -> Result<Vec<PolicySource>, PolicyErrors> {
        let candidate = split_policies(text, mode)?;
        self.check(&with_candidates(stored, candidate.clone()))?;
        Ok(candidate)
    }

    /// Compiles `sources` (checked as by [`check`](Self::check)) with the built-in policies as `version`.
    pub fn compile(
        &self,
        sources: &[PolicySource],
        version: u64,
    ) -> Result<Compiled, PolicyErrors> {
        on_parser_stack(|| self.build(sources, version))?
    }

    /// Makes `compiled` the set every following decision uses; decisions under way finish on the old one.
    pub fn install(&self, compiled: Compiled) {
        self.current.store(Arc::new(compiled));
    }

    /// The version decisions use now.
    pub fn version(&self) -> u64 {
        self.current.load().version
    }

    /// The set decisions use now.
    pub fn current(&self) -> Arc<Compiled> {
        self.current.load_full()
    }

    fn build(&self, sources: &[PolicySource], version: u64) -> Result<Compiled, PolicyErrors> {
        let mut problems = Vec::new();
        let mut set = PolicySet::new();
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        let builtins = builtin::policies();
        let all = builtins.iter().chain(sources);
        for src in all {
            let id = src.id.as_str();
            if !seen.insert(id) {
                problems.push(problem(id, "appears twice"));
                continue;
            }
            if let Err(limit) = limits::check_policy_text(&src.text) {
                problems.push(limit_problem(Some(id), limit));
                continue;
            }
            let policy = match parse_one(&src.id, &src.text) {
                Ok(p) => p,
                Err(e) => {
                    problems.extend(e.0);
                    continue;
                }
            };
            let builtin = src.id.is_builtin();
            if !builtin
                && policy.effect() == Effect::Permit
                && let Err(msg) = self.device_principal_only(policy.principal_constraint())
            {
                problems.push(problem(id, msg));
                continue;
            }
            if let Err(e) = set.add(policy.clone()) {
                problems.push(problem(id, e.to_string()));
                continue;
            }
            entries.push(Entry {
                mode: if builtin {
                    PolicyMode::Enforce
                } else {
                    src.mode
                },
                policy,
            });
        }
        if !problems.is_empty() {
            return Err(PolicyErrors(problems));
        }
        let validation = Validator::new(self.schema.clone()).validate(&set, ValidationMode::Strict);
        for e in validation.validation_errors() {
            problems.push(PolicyProblem {
                policy: Some(e.policy_id().to_string()),
                message: e.to_string(),
                limit: None,
            });
        }
        // Grants: every TopicFilter a policy names, in scope or condition.
        let mut grants = GrantIndex::default();
        let mut grant_uids = Vec::new();
        let mut known = HashSet::new();
        for entry in &entries {
            let mut uids = entry.policy.entity_literals();
            if let Scope::Uid(u) = resource_scope(entry.policy.resource_constraint()) {
                uids.push(u);
            }
            for uid in uids {
                if uid.type_name() != &self.names.topic_filter || !known.insert(uid.clone()) {
                    continue;
                }
                match GrantFilter::new(uid.id().unescaped()) {
                    Ok(g) => {
                        grants.insert(&g, grant_uids.len() as u32);
                        grant_uids.push(uid);
                    }
                    Err(e) => problems.push(problem(
                        AsRef::<str>::as_ref(entry.policy.id()),
                        format!("`{}` is not a topic grant: {e}", uid.id().unescaped()),
                    )),
                }
            }
        }
        if !problems.is_empty() {
            return Err(PolicyErrors(problems));
        }
        let mut by_action: HashMap<EntityUid, Slot> = HashMap::default();
        let mut any_action = Slot::default();
        for (n, entry) in entries.iter().enumerate() {
            let n = n as u32;
            let principal = principal_scope(entry.policy.principal_constraint());
            let resource = resource_scope(entry.policy.resource_constraint());
            let file = |slot: &mut Slot| slot.at(&principal).at(&resource).push(n);
            match entry.policy.action_constraint() {
                ActionConstraint::Any => file(&mut any_action),
                ActionConstraint::Eq(a) => file(by_action.entry(a).or_default()),
                ActionConstraint::In(list) => {
                    for a in list {
                        file(by_action.entry(a).or_default());
                    }
                }
            }
        }
        let lifecycle = entries
            .iter()
            .position(|e| AsRef::<str>::as_ref(e.policy.id()) == LIFECYCLE_POLICY)
            .map(|i| i as u32);
        Ok(Compiled {
            version,
            lifecycle,
            stored: entries.iter().filter(|e| !is_builtin(&e.policy)).count(),
            entries,
            by_action,
            any_action,
            grants,
            grant_uids,
            memo: RwLock::new(HashMap::default()),
        })
    }

    fn device_principal_only(&self, c: PrincipalConstraint) -> Result<(), String> {
        let n = &self.names;
        let ok = match &c {
            PrincipalConstraint::Any => false,
            PrincipalConstraint::Is(t) | PrincipalConstraint::IsIn(t, _) => t == &n.device,
            PrincipalConstraint::Eq(u) => u.type_name() == &n.device,
            PrincipalConstraint::In(u) => {
                u.type_name() == &n.device || u.type_name() == &n.device_group
            }
        };
        if ok {
            Ok(())
        } else {
            Err(
                "a stored `permit` must name device principals (`principal is Vouch::Device`, \
                 `principal in Vouch::DeviceGroup::\"…\"`, `principal == Vouch::Device::\"…\"`); \
                 operators' permissions come from their role"
                    .to_owned(),
            )
        }
    }

    /// Decides a device's request.
    pub fn decide_device(&self, req: &DeviceRequest) -> Decision {
        self.decide(&req.device, req.action, &req.resource, &req.context)
    }

    /// Decides a device's request from borrowed parts.
    pub fn decide(
        &self,
        device: &DeviceFacts,
        action: DeviceAction,
        resource: &Resource,
        context: &DeviceContext,
    ) -> Decision {
        self.decide_prepared(&self.prepare(device), action, resource, context)
    }

    /// A device's facts as the engine uses them, built once: a gateway prepares a device when its session
    /// opens and decides each packet against that (prepare again when the device's record changes).
    pub fn prepare(&self, device: &DeviceFacts) -> PreparedDevice {
        let n = &self.names;
        let id = device.id.to_string();
        let uid = n.uid(&n.device, &id);
        let mut ancestors: Vec<EntityUid> = device
            .groups
            .iter()
            .map(|g| n.uid(&n.device_group, g))
            .collect();
        if device.state == DeviceState::Restricted {
            ancestors.push(n.uid(&n.device_group, QUARANTINE_GROUP));
        }
        let entity = Arc::new(device_entity(&uid, device, &ancestors));
        PreparedDevice {
            id,
            uid,
            ancestors,
            entity,
            live: matches!(device.state, DeviceState::Active | DeviceState::Restricted),
        }
    }

    /// Decides a request from a prepared device.
    pub fn decide_prepared(
        &self,
        device: &PreparedDevice,
        action: DeviceAction,
        resource: &Resource,
        context: &DeviceContext,
    ) -> Decision {
        let compiled = self.current.load();
        let n = &self.names;
        let action_uid = n.uid(&n.action, action.as_str());
        if !resource.suits(action) {
            return refused(
                compiled.version,
                format!("`{action}` does not apply to this kind of resource"),
            );
        }
        let (resource, resource_parents) = match resource {
            Resource::Topic(t) => {
                let mut hits = Vec::new();
                compiled.grants.matching(t, &device.id, &mut hits);
                (n.uid(&n.topic, t.as_str()), grant_uids(&compiled, hits))
            }
            Resource::Subscription(f) => {
                let mut hits = Vec::new();
                compiled.grants.covering(f, &device.id, &mut hits);
                (n.uid(&n.topic, f.as_str()), grant_uids(&compiled, hits))
            }
            Resource::Service(s) => (n.uid(&n.service, s.as_str()), Vec::new()),
            Resource::Asset(a) => (n.uid(&n.asset, a.as_str()), Vec::new()),
        };
        let resource_entity = core_entity(&resource, Vec::new(), &resource_parents, Vec::new());
        self.evaluate(
            &compiled,
            Parts {
                principal: device.uid.clone(),
                ancestors: &device.ancestors,
                action: action_uid,
                resource,
                resource_parents,
                entities: vec![Arc::clone(&device.entity), Arc::new(resource_entity)],
                context: device_context(context),
                live: device.live,
            },
        )
    }

    /// Decides an operator's request under the built-in role policies (and any stored `forbid`).
    pub fn decide_operator(&self, req: &OperatorRequest) -> Decision {
        let compiled = self.current.load();
        let n = &self.names;
        let principal = n.uid(&n.operator, &req.token.to_string());
        let role = n.uid(&n.role, req.role.as_str());
        let entity = Arc::new(core_entity(
            &principal,
            vec![("name".into(), value(req.name.as_str()))],
            std::slice::from_ref(&role),
            Vec::new(),
        ));
        let mut pairs = clock_pairs(req.now);
        pairs.insert("mfa".into(), req.mfa.into());
        let context = Context::from(ast::Context::Value(Arc::new(pairs)));
        self.evaluate(
            &compiled,
            Parts {
                principal,
                ancestors: std::slice::from_ref(&role),
                action: n.uid(&n.action, req.permission.action()),
                resource: n.uid(&n.fleet, "default"),
                resource_parents: Vec::new(),
                entities: vec![entity],
                context,
                live: false,
            },
        )
    }

    fn evaluate(&self, compiled: &Compiled, parts: Parts<'_>) -> Decision {
        let mut candidates = Vec::new();
        let mut actions = vec![&parts.action];
        if let Some(groups) = self.action_groups.get(&parts.action) {
            actions.extend(groups);
        }
        let principal = (&parts.principal, parts.ancestors);
        let resource = (&parts.resource, parts.resource_parents.as_slice());
        for a in actions {
            if let Some(slot) = compiled.by_action.get(a) {
                collect(slot, principal, resource, &mut candidates);
            }
        }
        collect(&compiled.any_action, principal, resource, &mut candidates);
        if parts.live
            && let Some(l) = compiled.lifecycle
        {
            candidates.retain(|&c| c != l);
        }
        candidates.sort_unstable();
        candidates.dedup();
        let sliced = slice(compiled, &candidates);
        let request = match Request::new(
            parts.principal,
            parts.action,
            parts.resource,
            parts.context,
            None,
        ) {
            Ok(r) => r,
            Err(e) => return refused(compiled.version, e.to_string()),
        };
        // Every ancestor is already in each entity's parents: no transitive closure to compute.
        let entities = match CoreEntities::new().add_entities(
            parts.entities,
            None::<&NoEntitiesSchema>,
            TCComputation::AssumeAlreadyComputed,
            Extensions::all_available(),
        ) {
            Ok(e) => Entities::from(e),
            Err(e) => return refused(compiled.version, e.to_string()),
        };
        let mut decision = match &sliced.all {
            None => {
                let r = self
                    .authorizer
                    .is_authorized(&request, &sliced.enforce, &entities);
                Decision {
                    allowed: r.decision() == CedarDecision::Allow,
                    policies: reasons(&r),
                    errors: errors(&r, |_| true),
                    shadow: None,
                    version: compiled.version,
                }
            }
            Some(all) => self.decide_with_shadow(compiled, &sliced, all, &request, &entities),
        };
        if self.check_slicing {
            let whole = whole_set(compiled, Some(PolicyMode::Enforce));
            let r = self.authorizer.is_authorized(&request, &whole, &entities);
            if (r.decision() == CedarDecision::Allow) != decision.allowed
                || reasons(&r) != decision.policies
            {
                decision.errors.push(format!(
                    "slicing changed the decision: whole set says {:?} by {:?}",
                    r.decision(),
                    reasons(&r)
                ));
            }
            if let Some(shadow) = &decision.shadow {
                let whole = whole_set(compiled, None);
                let r = self.authorizer.is_authorized(&request, &whole, &entities);
                if (r.decision() == CedarDecision::Allow) != shadow.allowed
                    || reasons(&r) != shadow.policies
                {
                    decision.errors.push(format!(
                        "slicing changed the shadow outcome: whole set says {:?} by {:?}",
                        r.decision(),
                        reasons(&r)
                    ));
                }
            }
        }
        decision
    }
}

impl Engine {
    /// Decides with shadow policies among the candidates, in one evaluation where the answer allows it.
    ///
    /// Cedar reports every satisfied permit when it allows and every satisfied forbid when it denies. So one
    /// evaluation of enforce + shadow gives the shadow outcome, and the enforced one follows from it: allowed
    /// means no forbid held, so the enforced answer is "an enforce permit held"; denied by an enforce forbid
    /// is denied either way; nothing held is denied either way. Only "denied by shadow forbids alone" needs
    /// the enforce set evaluated on its own.
    fn decide_with_shadow(
        &self,
        compiled: &Compiled,
        sliced: &Sliced,
        all: &PolicySet,
        request: &Request,
        entities: &Entities,
    ) -> Decision {
        let r = self.authorizer.is_authorized(request, all, entities);
        let shadow = ShadowOutcome {
            allowed: r.decision() == CedarDecision::Allow,
            policies: reasons(&r),
        };
        let enforced = |id: &str| !sliced.shadow_ids.iter().any(|s| s == id);
        let held: Vec<String> = shadow
            .policies
            .iter()
            .filter(|p| enforced(p))
            .cloned()
            .collect();
        let (allowed, policies, errors) = if shadow.allowed {
            (!held.is_empty(), held, errors(&r, enforced))
        } else if !held.is_empty() || shadow.policies.is_empty() {
            (false, held, errors(&r, enforced))
        } else {
            let r = self
                .authorizer
                .is_authorized(request, &sliced.enforce, entities);
            (
                r.decision() == CedarDecision::Allow,
                reasons(&r),
                errors(&r, |_| true),
            )
        };
        Decision {
            allowed,
            policies,
            errors,
            shadow: Some(shadow),
            version: compiled.version,
        }
    }
}

fn errors(r: &cedar_policy::Response, keep: impl Fn(&str) -> bool) -> Vec<String> {
    r.diagnostics()
        .errors()
        .filter(|e| {
            let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
            keep(e.policy_id().as_ref())
        })
        .map(ToString::to_string)
        .collect()
}

struct Parts<'a> {
    principal: EntityUid,
    ancestors: &'a [EntityUid],
    action: EntityUid,
    resource: EntityUid,
    resource_parents: Vec<EntityUid>,
    entities: Vec<Arc<ast::Entity>>,
    context: Context,
    /// A device known to be active or restricted (see `Compiled::lifecycle`).
    live: bool,
}

/// A device's facts as entity, uid and ancestors, ready for many decisions (see [`Engine::prepare`]).
#[derive(Debug, Clone)]
pub struct PreparedDevice {
    id: String,
    uid: EntityUid,
    ancestors: Vec<EntityUid>,
    entity: Arc<ast::Entity>,
    /// Active or restricted: the lifecycle forbid cannot hold.
    live: bool,
}

impl Compiled {
    fn empty() -> Self {
        Self {
            version: 0,
            entries: Vec::new(),
            by_action: HashMap::default(),
            any_action: Slot::default(),
            grants: GrantIndex::default(),
            grant_uids: Vec::new(),
            memo: RwLock::new(HashMap::default()),
            stored: 0,
            lifecycle: None,
        }
    }
}

fn problem(id: &str, message: impl Into<String>) -> PolicyProblem {
    PolicyProblem {
        policy: Some(id.to_owned()),
        message: message.into(),
        limit: None,
    }
}

fn is_builtin(p: &Policy) -> bool {
    AsRef::<str>::as_ref(p.id()).starts_with(PolicyId::RESERVED_PREFIX)
}

/// Parses `text` as exactly one policy named `id` (an `@id("…")` annotation, if any, must agree).
pub(crate) fn parse_one(id: &PolicyId, text: &str) -> Result<Policy, PolicyErrors> {
    let set = PolicySet::from_str(text)
        .map_err(|e| PolicyErrors::one(Some(id.as_str()), format!("does not parse: {e}")))?;
    let mut policies = set.policies();
    let (Some(policy), None) = (policies.next(), policies.next()) else {
        return Err(PolicyErrors::one(
            Some(id.as_str()),
            "must hold exactly one policy (and no templates)",
        ));
    };
    if set.templates().next().is_some() || !policy.is_static() {
        return Err(PolicyErrors::one(
            Some(id.as_str()),
            "templates are not supported",
        ));
    }
    if let Some(annotated) = policy.annotation("id")
        && annotated != id.as_str()
    {
        return Err(PolicyErrors::one(
            Some(id.as_str()),
            format!("its @id(\"{annotated}\") annotation names another policy"),
        ));
    }
    Ok(policy.new_id(cedar_policy::PolicyId::new(id.as_str())))
}

/// Splits a file of policies into sources; every policy needs an `@id("…")` annotation, its stored name.
/// The text is pre-scanned first ([`crate::limits::check_text`]: size, number of policies, nesting,
/// expression depth) and parsed on a thread with a large stack of its own.
pub fn split_policies(text: &str, mode: PolicyMode) -> Result<Vec<PolicySource>, PolicyErrors> {
    limits::check_text(text).map_err(|l| PolicyErrors::limit(None, l))?;
    on_parser_stack(|| split_checked(text, mode))?
}

fn split_checked(text: &str, mode: PolicyMode) -> Result<Vec<PolicySource>, PolicyErrors> {
    let set = PolicySet::from_str(text)
        .map_err(|e| PolicyErrors::one(None, format!("does not parse: {e}")))?;
    if set.templates().next().is_some() {
        return Err(PolicyErrors::one(None, "templates are not supported"));
    }
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for p in set.policies() {
        let Some(id) = p.annotation("id") else {
            problems.push(PolicyProblem {
                policy: None,
                limit: None,
                message: format!(
                    "every policy needs an @id(\"name\") annotation; this one has none: {}",
                    first_line(&p.to_string())
                ),
            });
            continue;
        };
        match id.parse::<PolicyId>() {
            Ok(id) => out.push(PolicySource {
                id,
                text: p.to_string(),
                mode,
            }),
            Err(e) => problems.push(problem(id, e.to_string())),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(PolicyErrors(problems))
    }
}

/// `set` with `candidates` applied: a candidate replaces the policy with its id, or joins the set.
pub fn with_candidates(set: &[PolicySource], candidates: Vec<PolicySource>) -> Vec<PolicySource> {
    let mut out: Vec<PolicySource> = set
        .iter()
        .filter(|s| !candidates.iter().any(|c| c.id == s.id))
        .cloned()
        .collect();
    out.extend(candidates);
    out
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s)
}

fn grant_uids(compiled: &Compiled, hits: Vec<u32>) -> Vec<EntityUid> {
    hits.into_iter()
        .filter_map(|h| compiled.grant_uids.get(h as usize).cloned())
        .collect()
}

fn reasons(r: &cedar_policy::Response) -> Vec<String> {
    let mut v: Vec<String> = r.diagnostics().reason().map(ToString::to_string).collect();
    v.sort_unstable();
    v
}

fn refused(version: u64, why: impl Into<String>) -> Decision {
    Decision {
        allowed: false,
        policies: Vec::new(),
        errors: vec![why.into()],
        shadow: None,
        version,
    }
}

fn slice(compiled: &Compiled, candidates: &[u32]) -> Arc<Sliced> {
    if let Ok(memo) = compiled.memo.read()
        && let Some(s) = memo.get(candidates)
    {
        return Arc::clone(s);
    }
    let mut enforce = PolicySet::new();
    let mut all = PolicySet::new();
    let mut shadow_ids = Vec::new();
    for &i in candidates {
        let e = &compiled.entries[i as usize];
        // Ids are unique in a compiled set, so adding cannot fail.
        if e.mode == PolicyMode::Enforce {
            let _ = enforce.add(e.policy.clone());
        } else {
            shadow_ids.push(e.policy.id().to_string());
        }
        let _ = all.add(e.policy.clone());
    }
    let sliced = Arc::new(Sliced {
        enforce,
        all: (!shadow_ids.is_empty()).then_some(all),
        shadow_ids,
    });
    if let Ok(mut memo) = compiled.memo.write() {
        if memo.len() >= MEMO_LIMIT {
            memo.clear();
        }
        memo.insert(candidates.into(), Arc::clone(&sliced));
    }
    sliced
}

/// Every policy of `compiled` in `mode` (every policy for `None`): what slicing is checked against.
fn whole_set(compiled: &Compiled, mode: Option<PolicyMode>) -> PolicySet {
    let mut set = PolicySet::new();
    for e in &compiled.entries {
        if mode.is_none_or(|m| e.mode == m) {
            let _ = set.add(e.policy.clone());
        }
    }
    set
}

fn value(v: impl Into<ast::Literal>) -> ast::PartialValue {
    ast::PartialValue::Value(ast::Value::from(v))
}

/// An entity whose `parents` already hold every ancestor (Vouch computes them; groups do not nest yet).
fn core_entity(
    uid: &EntityUid,
    attrs: Vec<(SmolStr, ast::PartialValue)>,
    ancestors: &[EntityUid],
    tags: Vec<(SmolStr, ast::PartialValue)>,
) -> ast::Entity {
    ast::Entity::new_with_attr_partial_value(
        uid.clone().into(),
        attrs,
        HashSet::new(),
        ancestors.iter().cloned().map(Into::into).collect(),
        tags,
    )
}

fn device_entity(uid: &EntityUid, d: &DeviceFacts, ancestors: &[EntityUid]) -> ast::Entity {
    let mut attrs = vec![
        ("class".into(), value(d.class.as_str())),
        ("state".into(), value(d.state.as_str())),
    ];
    for (k, v) in [
        ("vendor", &d.vendor),
        ("model", &d.model),
        ("firmware", &d.firmware),
        ("zone", &d.zone),
        ("serial", &d.serial),
    ] {
        if let Some(v) = v {
            attrs.push((k.into(), value(v.as_str())));
        }
    }
    let tags = d
        .labels
        .iter()
        .map(|(k, v)| (SmolStr::from(k.as_str()), value(v.as_str())))
        .collect();
    core_entity(uid, attrs, ancestors, tags)
}

fn clock_pairs(now: Timestamp) -> std::collections::BTreeMap<SmolStr, ast::Value> {
    let (hour, weekday) = clock_parts(now);
    std::collections::BTreeMap::from([
        ("now".into(), (now.unix_micros() / 1_000_000).into()),
        ("hour".into(), hour.into()),
        ("weekday".into(), weekday.into()),
    ])
}

fn device_context(c: &crate::request::DeviceContext) -> Context {
    let mut pairs = clock_pairs(c.now);
    if let Some(t) = c.trust {
        pairs.insert("trust".into(), i64::from(t.get()).into());
        pairs.insert("band".into(), t.band().as_str().into());
    }
    if let Some(l) = &c.location {
        pairs.insert("location".into(), l.as_str().into());
    }
    if let Some(b) = c.firmware_current {
        pairs.insert("firmware_current".into(), b.into());
    }
    if let Some(b) = c.compliant {
        pairs.insert("compliant".into(), b.into());
    }
    if let Some(d) = c.cert_days_left {
        pairs.insert("cert_days_left".into(), d.into());
    }
    Context::from(ast::Context::Value(Arc::new(pairs)))
}

/// Hour of day (0–23) and ISO weekday (1 = Monday) in UTC.
fn clock_parts(now: Timestamp) -> (i64, i64) {
    let secs = now.unix_micros().div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let hour = secs.rem_euclid(86_400) / 3_600;
    // 1970-01-01 was a Thursday (ISO 4).
    let weekday = (days + 3).rem_euclid(7) + 1;
    (hour, weekday)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_parts_are_utc() {
        // 2026-11-27 15:00:00 UTC is a Friday.
        let t = Timestamp::from_unix_micros(1_795_791_600 * 1_000_000);
        assert_eq!(clock_parts(t), (15, 5));
        assert_eq!(clock_parts(Timestamp::EPOCH), (0, 4));
    }
}
