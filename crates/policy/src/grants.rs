//! Topic grants: the MQTT filters that policies name (`Vouch::TopicFilter::"plant/+/telemetry"`), and an index
//! that finds every grant covering a topic in one walk down a trie, however many grants there are.
//!
//! Cedar compares entities, not MQTT topics, so Vouch does the MQTT part: a request's `Topic` entity is made
//! `in` each grant that covers it (by MQTT §4.7 matching for a PUBLISH, by containment for a SUBSCRIBE), and
//! the policy's `resource in Vouch::TopicFilter::"…"` is then plain Cedar. A grant may hold `${device.id}` as a
//! whole level: it stands for the requesting device's id, so one policy gives every device its own tree.

use std::collections::HashMap;

use crate::topic::{TopicError, TopicFilter, TopicName};

/// The one variable a grant may hold, as a whole level.
pub const DEVICE_ID_VAR: &str = "${device.id}";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Exact(String),
    One,
    Rest,
    DeviceId,
}

/// A topic filter as a policy grants it: MQTT wildcards plus `${device.id}` levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantFilter {
    text: String,
    levels: Vec<Level>,
}

impl GrantFilter {
    /// Parses a grant; variables other than a whole-level `${device.id}` are refused.
    pub fn new(s: &str) -> Result<Self, TopicError> {
        // Check MQTT's rules on the text with the variable replaced by a plain level.
        TopicFilter::new(&s.replace(DEVICE_ID_VAR, "v"))?;
        let levels = s
            .split('/')
            .map(|l| match l {
                "+" => Ok(Level::One),
                "#" => Ok(Level::Rest),
                DEVICE_ID_VAR => Ok(Level::DeviceId),
                l if l.contains("${") => Err(TopicError::UnknownVariable(l.to_owned())),
                l => Ok(Level::Exact(l.to_owned())),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            text: s.to_owned(),
            levels,
        })
    }

    /// The grant as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The plain MQTT filter this grant is for `device` (an id holds no `/`, `+` or `#`, so this never widens).
    pub fn expand(&self, device: &str) -> Result<TopicFilter, TopicError> {
        TopicFilter::new(&self.text.replace(DEVICE_ID_VAR, device))
    }
}

#[derive(Debug, Default)]
struct Node {
    exact: HashMap<Box<str>, Node>,
    one: Option<Box<Node>>,
    var: Option<Box<Node>>,
    /// Grants that end here.
    ends: Vec<u32>,
    /// Grants that end here with `#`.
    rest: Vec<u32>,
}

/// Every grant the policy set names, in a trie keyed by level.
#[derive(Debug, Default)]
pub struct GrantIndex {
    root: Node,
    len: usize,
}

impl GrantIndex {
    /// Adds `grant` under the number `n` (what lookups report).
    pub fn insert(&mut self, grant: &GrantFilter, n: u32) {
        let mut node = &mut self.root;
        for level in &grant.levels {
            node = match level {
                Level::Exact(s) => node.exact.entry(s.as_str().into()).or_default(),
                Level::One => node.one.get_or_insert_with(Box::default),
                Level::DeviceId => node.var.get_or_insert_with(Box::default),
                Level::Rest => {
                    node.rest.push(n);
                    self.len += 1;
                    return;
                }
            };
        }
        node.ends.push(n);
        self.len += 1;
    }

    /// How many grants are indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no grant is indexed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends to `out` every grant whose filter matches the topic `name` for `device` (MQTT §4.7).
    pub fn matching(&self, name: &TopicName, device: &str, out: &mut Vec<u32>) {
        let levels: Vec<&str> = name.as_str().split('/').collect();
        walk(&self.root, &levels, 0, device, name.is_system(), false, out);
    }

    /// Appends to `out` every grant that covers everything the subscription `filter` can match for `device`.
    pub fn covering(&self, filter: &TopicFilter, device: &str, out: &mut Vec<u32>) {
        let levels: Vec<&str> = filter.as_str().split('/').collect();
        let system = filter.as_str().starts_with('$');
        walk(&self.root, &levels, 0, device, system, true, out);
    }
}

/// One step down the trie. `system`: the input starts with a `$` level, which no leading wildcard covers.
/// `wild`: the input is a filter whose own `+`/`#` levels only a grant's `+`/`#` can cover.
fn walk(
    node: &Node,
    levels: &[&str],
    i: usize,
    device: &str,
    system: bool,
    wild: bool,
    out: &mut Vec<u32>,
) {
    let wildcards_ok = !(i == 0 && system);
    if wildcards_ok {
        out.extend_from_slice(&node.rest);
    }
    let Some(&level) = levels.get(i) else {
        out.extend_from_slice(&node.ends);
        return;
    };
    if wild && level == "#" {
        return;
    }
    if wild && level == "+" {
        if let Some(one) = &node.one {
            walk(one, levels, i + 1, device, system, wild, out);
        }
        return;
    }
    if let Some(next) = node.exact.get(level) {
        walk(next, levels, i + 1, device, system, wild, out);
    }
    if wildcards_ok && let Some(one) = &node.one {
        walk(one, levels, i + 1, device, system, wild, out);
    }
    if level == device
        && let Some(var) = &node.var
    {
        walk(var, levels, i + 1, device, system, wild, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn index(grants: &[&str]) -> (GrantIndex, Vec<GrantFilter>) {
        let mut idx = GrantIndex::default();
        let parsed: Vec<GrantFilter> = grants
            .iter()
            .map(|g| GrantFilter::new(g).unwrap())
            .collect();
        for (n, g) in parsed.iter().enumerate() {
            idx.insert(g, n as u32);
        }
        (idx, parsed)
    }

    fn sorted(mut v: Vec<u32>) -> Vec<u32> {
        v.sort_unstable();
        v.dedup();
        v
    }

    #[test]
    fn grants_and_variables() {
        let (idx, _) = index(&["devices/${device.id}/#", "plant/+/telemetry", "#", "$SYS/#"]);
        let mut out = vec![];
        idx.matching(&TopicName::new("devices/d1/temp").unwrap(), "d1", &mut out);
        assert_eq!(sorted(out), vec![0, 2]);
        let mut out = vec![];
        idx.matching(&TopicName::new("devices/d2/temp").unwrap(), "d1", &mut out);
        assert_eq!(sorted(out), vec![2]);
        let mut out = vec![];
        idx.matching(&TopicName::new("$SYS/uptime").unwrap(), "d1", &mut out);
        assert_eq!(sorted(out), vec![3]);
        let mut out = vec![];
        idx.covering(&TopicFilter::new("devices/d1/+").unwrap(), "d1", &mut out);
        assert_eq!(sorted(out), vec![0, 2]);
        let mut out = vec![];
        idx.covering(&TopicFilter::new("devices/+/temp").unwrap(), "d1", &mut out);
        assert_eq!(
            sorted(out),
            vec![2],
            "a wildcard in place of the id is not the device's own tree"
        );
        assert!(GrantFilter::new("devices/dev-${device.id}/#").is_err());
        assert!(GrantFilter::new("devices/${device.serial}").is_err());
        assert!(GrantFilter::new("a/#/b").is_err());
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just(String::new()),
            Just("$s".to_owned()),
            Just("d1".to_owned()),
        ]
    }

    fn name() -> impl Strategy<Value = String> {
        prop::collection::vec(level(), 1..5)
            .prop_map(|v| v.join("/"))
            .prop_filter("non-empty", |s| !s.is_empty())
    }

    fn filter() -> impl Strategy<Value = String> {
        let lvl = prop_oneof![level(), Just("+".to_owned())];
        (prop::collection::vec(lvl, 1..5), any::<bool>())
            .prop_map(|(mut v, hash)| {
                if hash {
                    v.push("#".to_owned());
                }
                v.join("/")
            })
            .prop_filter("non-empty", |s| !s.is_empty())
    }

    fn grant() -> impl Strategy<Value = String> {
        let lvl = prop_oneof![
            level(),
            Just("+".to_owned()),
            Just(DEVICE_ID_VAR.to_owned())
        ];
        (prop::collection::vec(lvl, 0..5), any::<bool>()).prop_filter_map(
            "non-empty",
            |(mut v, hash)| {
                if hash {
                    v.push("#".to_owned());
                }
                let s = v.join("/");
                (!s.is_empty()).then_some(s)
            },
        )
    }

    proptest! {
        /// The trie finds exactly the grants that direct matching on the expanded filter finds.
        #[test]
        fn index_agrees_with_matching(grants in prop::collection::vec(grant(), 1..12), topic in name(),
                                      sub in filter(), device in prop_oneof![Just("d1"), Just("a")]) {
            let refs: Vec<&str> = grants.iter().map(String::as_str).collect();
            let (idx, parsed) = index(&refs);
            let topic = TopicName::new(&topic).unwrap();
            let sub = TopicFilter::new(&sub).unwrap();
            let want_pub: Vec<u32> = parsed.iter().enumerate()
                .filter(|(_, g)| g.expand(device).unwrap().matches(&topic))
                .map(|(n, _)| n as u32).collect();
            let want_sub: Vec<u32> = parsed.iter().enumerate()
                .filter(|(_, g)| sub.is_within(&g.expand(device).unwrap()))
                .map(|(n, _)| n as u32).collect();
            let mut got = vec![];
            idx.matching(&topic, device, &mut got);
            prop_assert_eq!(sorted(got), want_pub);
            let mut got = vec![];
            idx.covering(&sub, device, &mut got);
            prop_assert_eq!(sorted(got), want_sub);
        }
    }
}
