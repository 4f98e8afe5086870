//! The pre-scan's measures on the shapes that recurse in Cedar, and the engine refusing each past its limit
//! (at depths up to 100,000) with an error naming the limit, without a crash; the deepest accepted policies
//! still validate completely, compile, decide without errors and drop on a 2 MiB stack (a tokio worker's).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use vouch_policy::limits::{
    MAX_EXPRESSION_DEPTH, MAX_NESTING, MAX_POLICIES_PER_TEXT, MAX_TEXT_BYTES, scan,
};
use vouch_policy::{
    DEFAULTS, DeviceAction, DeviceContext, DeviceFacts, Engine, PolicyLimit, PolicySource,
    Resource, TopicName, split_policies,
};
use vouch_types::{DeviceId, DeviceState, PolicyId, PolicyMode, Timestamp};

/// A device policy with `conds` as its conditions (`when { … }` clauses, or anything after the scope).
fn policy(conds: &str) -> String {
    format!(
        "@id(\"deep\")\npermit(principal is Vouch::Device, action == Vouch::Action::\"publish\", \
         resource)\n{conds};"
    )
}

fn when(cond: &str) -> String {
    policy(&format!("when {{ {cond} }}"))
}

/// The shapes that recurse somewhere in Cedar (parser, validator, evaluator, `Display`, `Drop`), `n` deep.
fn hostile(shape: &str, n: usize) -> String {
    match shape {
        "parens" => when(&format!("{}true{}", "(".repeat(n), ")".repeat(n))),
        "lists" => when(&format!("{}1{}.isEmpty()", "[".repeat(n), "]".repeat(n))),
        "records" => when(&format!("{}1{} == {{}}", "{a:".repeat(n), "}".repeat(n))),
        "if" => when(&format!(
            "{}true{}",
            "if true then ".repeat(n),
            " else false".repeat(n)
        )),
        "else-if" => when(&format!(
            "{}true",
            "if context.hour > 1 then false else ".repeat(n)
        )),
        "not" => when(&format!("{}true{}", "!(".repeat(n), ")".repeat(n))),
        "bangs" => when(&format!("{}true", "!".repeat(n))),
        "dashes" => when(&format!("{}1 == 0", "- ".repeat(n))),
        "negs" => when(&format!("{}1{} == 0", "-(".repeat(n), ")".repeat(n))),
        "and" => when(&vec!["context.hour >= 0"; n].join(" && ")),
        "or" => when(&vec!["context.hour < 0"; n].join(" || ")),
        "add" => when(&format!("{} == 0", vec!["context.hour"; n].join(" + "))),
        "mult" => when(&format!("{} == 0", vec!["context.hour"; n].join(" * "))),
        "member" => when(&format!("context{} == 1", ".a".repeat(n))),
        "index" => when(&format!("context{} == 1", "[\"a\"]".repeat(n))),
        "calls" => when(&format!("[1]{}", ".contains(1)".repeat(n))),
        "has" => when(&format!("context has {}", vec!["a"; n].join("."))),
        "whens" => policy(&"when { context.hour >= 0 } ".repeat(n)),
        "unlesses" => policy(&"unless { context.hour < 0 } ".repeat(n)),
        _ => panic!("unknown shape {shape}"),
    }
}

const SHAPES: &[&str] = &[
    "parens", "lists", "records", "if", "else-if", "not", "bangs", "dashes", "negs", "and", "or",
    "add", "mult", "member", "index", "calls", "has", "whens", "unlesses",
];

/// The nesting shapes (the others are chains).
fn nests(shape: &str) -> bool {
    matches!(
        shape,
        "parens" | "lists" | "records" | "if" | "else-if" | "not" | "negs"
    )
}

#[test]
fn the_scan_refuses_every_recursive_shape_at_depth_100000() {
    for &shape in SHAPES {
        for n in [1_000, 100_000] {
            let text = hostile(shape, n);
            match scan(&text) {
                Err(PolicyLimit::Nesting { depth, limit }) => {
                    assert!(nests(shape), "{shape}");
                    assert_eq!(limit, MAX_NESTING);
                    assert!(depth > n, "{shape} {n}: {depth}");
                }
                Err(PolicyLimit::ExpressionDepth { depth, limit }) => {
                    assert!(!nests(shape), "{shape}");
                    assert_eq!(limit, MAX_EXPRESSION_DEPTH);
                    assert!(depth >= n, "{shape} {n}: {depth}");
                }
                other => panic!("{shape} {n}: {other:?}"),
            }
        }
    }
}

#[test]
fn the_scan_measures_nesting_and_depth() {
    let s = scan(&when("(((true)))")).unwrap();
    // The scope's parentheses, the condition's braces, then three.
    assert_eq!((s.nesting, s.policies), (4, 1));
    let s = scan(&when(
        &vec!["principal.class == \"camera\""; 100].join(" || "),
    ))
    .unwrap();
    assert!((100..=110).contains(&s.depth), "{s:?}");
    // Precedence: a `||` of `&&`s is as deep as the longer chain plus the other, not their sum.
    let s = scan(&when(
        &vec!["context.hour > 1 && context.hour < 5"; 100].join(" || "),
    ))
    .unwrap();
    assert!((100..=110).contains(&s.depth), "{s:?}");
    // Commas separate independent expressions.
    let items = vec!["context.hour + 1"; 200].join(", ");
    assert!(
        scan(&when(&format!("[{items}].contains(1)")))
            .unwrap()
            .depth
            < 10
    );
    // Many policies: each measured alone.
    let many = vec![when(&vec!["context.hour >= 0"; 200].join(" && ")); 10].join("\n");
    let s = scan(&many).unwrap();
    assert_eq!(s.policies, 10);
    assert!(s.depth < MAX_EXPRESSION_DEPTH);
}

#[test]
fn strings_escapes_and_comments_do_not_count() {
    let brackets = "(((((((((((((((((((((((((((((((((((((((((((((";
    let text = format!(
        "// {brackets}\n{}",
        when(&format!(
            "principal.class == \"{brackets}\" && principal.class != \"\\\"{brackets}\\\\\" // {brackets}\n"
        ))
    );
    let s = scan(&text).unwrap();
    assert_eq!(s.nesting, 1, "{s:?}");
    let engine = Engine::new().unwrap();
    engine
        .check(&split_policies(&text, PolicyMode::Shadow).unwrap())
        .unwrap();
}

fn source(text: String) -> PolicySource {
    PolicySource {
        id: PolicyId::try_from("deep".to_owned()).unwrap(),
        text,
        mode: PolicyMode::Shadow,
    }
}

#[test]
fn the_engine_refuses_past_every_limit_naming_it() {
    let engine = Engine::new().unwrap();
    for &shape in SHAPES {
        for n in [300, 1_000, 100_000] {
            let text = hostile(shape, n);
            let e = engine.check(&[source(text.clone())]).unwrap_err();
            let limit = e
                .first_limit()
                .unwrap_or_else(|| panic!("{shape} {n}: {e}"));
            let e2 = split_policies(&text, PolicyMode::Shadow).unwrap_err();
            let limit2 = e2
                .first_limit()
                .unwrap_or_else(|| panic!("{shape} {n}: {e2}"));
            let message = e.to_string();
            match (limit, limit2) {
                (PolicyLimit::Nesting { .. }, PolicyLimit::Nesting { .. }) => {
                    assert!(message.contains("the limit is 32"), "{message}")
                }
                (PolicyLimit::ExpressionDepth { .. }, PolicyLimit::ExpressionDepth { .. }) => {
                    assert!(message.contains("the limit is 256"), "{message}")
                }
                (PolicyLimit::PolicyBytes { .. }, _) if text.len() > 64 * 1024 => {
                    assert!(message.contains("the limit is 65536 bytes"), "{message}")
                }
                other => panic!("{shape} {n}: {other:?}"),
            }
            assert!(message.starts_with("policy `deep`: "), "{message}");
        }
    }
    let e = engine.check(&[source(hostile("parens", 150))]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "policy `deep`: policy nests 151 levels deep (brackets and if-then-else count one level \
         each); the limit is 32"
    );
}

#[test]
fn a_text_is_bounded_in_size_and_in_policies() {
    let one = "permit(principal is Vouch::Device, action, resource) when { false };\n";
    let many: String = (0..=MAX_POLICIES_PER_TEXT)
        .map(|i| format!("@id(\"p{i}\") {one}"))
        .collect();
    assert!(many.len() < MAX_TEXT_BYTES);
    let e = split_policies(&many, PolicyMode::Shadow).unwrap_err();
    assert_eq!(
        e.first_limit(),
        Some(PolicyLimit::Policies {
            count: MAX_POLICIES_PER_TEXT + 1,
            limit: MAX_POLICIES_PER_TEXT
        })
    );
    let at_limit: String = (0..MAX_POLICIES_PER_TEXT)
        .map(|i| format!("@id(\"p{i}\") {one}"))
        .collect();
    assert_eq!(
        split_policies(&at_limit, PolicyMode::Shadow).unwrap().len(),
        MAX_POLICIES_PER_TEXT
    );
    let big = format!("{one}// {}\n", "x".repeat(MAX_TEXT_BYTES));
    let e = split_policies(&big, PolicyMode::Shadow).unwrap_err();
    assert!(matches!(
        e.first_limit(),
        Some(PolicyLimit::TextBytes { limit, .. }) if limit == MAX_TEXT_BYTES
    ));
    assert!(e.first_limit().unwrap().is_size());
}

/// The largest `n` whose policy the scan accepts.
fn deepest(make: impl Fn(usize) -> String) -> usize {
    let mut n = 1;
    while scan(&make(n + 1)).is_ok() {
        n += 1;
        assert!(n < 10_000);
    }
    n
}

/// Makes a policy `n` deep.
type Shaper = Box<dyn Fn(usize) -> String>;

/// Policies at the limits that Vouch's schema accepts, and that evaluate without error.
fn deepest_valid() -> Vec<(&'static str, String)> {
    let chain = |sep: &'static str, term: &'static str, tail: &'static str| {
        move |n: usize| when(&format!("{}{tail}", vec![term; n].join(sep)))
    };
    let shapes: Vec<(&'static str, Shaper)> = vec![
        ("and", Box::new(chain(" && ", "context.hour >= 0", ""))),
        ("or", Box::new(chain(" || ", "context.hour < 0", ""))),
        ("add", Box::new(chain(" + ", "context.hour", " >= 0"))),
        ("mult", Box::new(chain(" * ", "1", " * context.hour >= 0"))),
        (
            "whens",
            Box::new(|n| policy(&"when { context.hour >= 0 } ".repeat(n))),
        ),
        (
            "unlesses",
            Box::new(|n| policy(&"unless { context.hour < 0 } ".repeat(n))),
        ),
        (
            "parens around a chain",
            Box::new(|n| {
                when(&format!(
                    "{}{} >= 0{}",
                    "(".repeat(29),
                    vec!["context.hour"; n].join(" + "),
                    ")".repeat(29)
                ))
            }),
        ),
        (
            "records",
            Box::new(|n| {
                when(&format!(
                    "{}1{}{} == 1",
                    "{a:".repeat(n),
                    "}".repeat(n),
                    ".a".repeat(n)
                ))
            }),
        ),
        (
            "if",
            Box::new(|n| {
                when(&format!(
                    "{}true{}",
                    "if context.hour >= 0 then ".repeat(n),
                    " else false".repeat(n)
                ))
            }),
        ),
        (
            "negs",
            Box::new(|n| {
                when(&format!(
                    "{}context.hour{} <= 0",
                    "-(".repeat(n),
                    ")".repeat(n)
                ))
            }),
        ),
    ];
    shapes
        .into_iter()
        .map(|(name, make)| (name, make(deepest(&make))))
        .collect()
}

fn device() -> DeviceFacts {
    DeviceFacts {
        id: DeviceId::derived("deep"),
        class: "sensor".into(),
        state: DeviceState::Active,
        vendor: None,
        model: None,
        firmware: None,
        zone: None,
        serial: None,
        labels: Vec::new(),
        groups: Vec::new(),
    }
}

#[test]
fn the_deepest_accepted_policies_compile_decide_and_drop_on_a_2_mib_stack() {
    let defaults = split_policies(DEFAULTS, PolicyMode::Enforce).unwrap();
    for (name, text) in deepest_valid() {
        let shape = scan(&text).unwrap();
        assert!(
            shape.depth > MAX_EXPRESSION_DEPTH - 8 || shape.nesting > MAX_NESTING - 3,
            "{name}: {shape:?}"
        );
        let mut sources = defaults.clone();
        sources.extend(split_policies(&text, PolicyMode::Enforce).unwrap());
        let engine = Engine::new().unwrap();
        let compiled = engine
            .compile(&sources, 1)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // Decisions run on the caller's thread: a tokio worker has 2 MiB of stack.
        let name2 = name.to_owned();
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                engine.install(compiled);
                let d = engine.decide(
                    &device(),
                    DeviceAction::Publish,
                    &Resource::Topic(TopicName::new("plant/x").unwrap()),
                    &DeviceContext::at(Timestamp::from_unix_micros(1_795_791_600_000_000)),
                );
                assert!(d.errors.is_empty(), "{name2}: {:?}", d.errors);
                drop(engine);
            })
            .unwrap()
            .join()
            .unwrap_or_else(|_| panic!("{name} failed on a 2 MiB stack"));
    }
}

#[test]
fn the_deepest_accepted_policies_are_validated_completely() {
    // Cedar's validator gives up silently (no error reported) when its stack runs low: at the limits, on
    // the parser's own stack, the type error at the bottom of the deepest chain is still found.
    let engine = Engine::new().unwrap();
    let make = |n: usize| {
        when(&format!(
            "{}{} >= 0{}",
            "(".repeat(29),
            vec!["context.hour"; n].join(" + ") + " + \"x\"",
            ")".repeat(29)
        ))
    };
    let text = make(deepest(make));
    let e = engine
        .check(&split_policies(&text, PolicyMode::Shadow).unwrap())
        .unwrap_err();
    assert!(e.first_limit().is_none());
    assert!(e.to_string().contains("unexpected type"), "{e}");
}
