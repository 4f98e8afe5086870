//! Property tests: topic matching agrees with an independent reference (a regular-language model written
//! level by level), and the algebra a policy relies on holds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use vouch_policy::{TopicFilter, TopicName};

/// Levels drawn from a small alphabet so that filters and names collide often.
fn level() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[ab]",
        "[ab]{2}",
        Just("$SYS".to_owned())
    ]
}

fn name() -> impl Strategy<Value = String> {
    // MQTT topic names are at least one character long.
    proptest::collection::vec(level(), 1..5)
        .prop_map(|l| l.join("/"))
        .prop_filter("non-empty", |s| !s.is_empty())
}

fn filter() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(prop_oneof![level(), Just("+".to_owned())], 0..4),
        any::<bool>(),
    )
        .prop_map(|(mut levels, hash)| {
            if hash || levels.is_empty() {
                levels.push("#".to_owned());
            }
            levels.join("/")
        })
}

/// The reference: a direct reading of the specification, recursive over levels.
fn reference(filter: &[&str], name: &[&str], first: bool) -> bool {
    if first
        && name.first().is_some_and(|l| l.starts_with('$'))
        && matches!(filter.first(), Some(&"+" | &"#"))
    {
        return false;
    }
    match (filter.first(), name.first()) {
        (Some(&"#"), _) => true,
        (None, None) => true,
        (Some(&"+"), Some(_)) => reference(&filter[1..], &name[1..], false),
        (Some(f), Some(n)) if f == n => reference(&filter[1..], &name[1..], false),
        _ => false,
    }
}

proptest! {
    #[test]
    fn matching_agrees_with_the_reference(f in filter(), n in name()) {
        let (Ok(tf), Ok(tn)) = (TopicFilter::new(&f), TopicName::new(&n)) else { return Ok(()) };
        let fl: Vec<&str> = f.split('/').collect();
        let nl: Vec<&str> = n.split('/').collect();
        prop_assert_eq!(tf.matches(&tn), reference(&fl, &nl, true), "filter {} name {}", f, n);
    }

    #[test]
    fn a_name_as_a_filter_matches_itself_only(a in name(), b in name()) {
        let f = TopicFilter::new(&a).unwrap();
        prop_assert!(f.matches(&TopicName::new(&a).unwrap()));
        prop_assert_eq!(f.matches(&TopicName::new(&b).unwrap()), a == b);
    }

    #[test]
    fn within_never_widens(small in filter(), big in filter(), n in name()) {
        let (Ok(s), Ok(b), Ok(tn)) = (TopicFilter::new(&small), TopicFilter::new(&big), TopicName::new(&n)) else {
            return Ok(());
        };
        if s.is_within(&b) && s.matches(&tn) {
            prop_assert!(b.matches(&tn), "{} within {} but {} escapes", small, big, n);
        }
    }

    #[test]
    fn hash_matches_every_non_system_topic(n in name()) {
        let tn = TopicName::new(&n).unwrap();
        prop_assert_eq!(TopicFilter::new("#").unwrap().matches(&tn), !n.starts_with('$'));
    }
}
