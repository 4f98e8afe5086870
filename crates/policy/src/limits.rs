//! Bounds on a Cedar text, checked by a lexer-aware pre-scan before Cedar sees it.
//!
//! Cedar's parser is an LR parser (no recursion), but what it builds is a tree, and the conversion from its
//! concrete syntax to the AST, the validator, `Display`, the evaluator and `Drop` all recurse over that tree:
//! about nine concrete nodes per bracket, one AST node per operator of a chain (`a && b && c` is
//! `And(And(a, b), c)`, `a.b.c` is `GetAttr(GetAttr(a, b), c)`, the `when` clauses of a policy are joined
//! by `&&`). A policy nesting 150 parentheses overflowed a 2 MiB tokio worker; a long operator chain builds
//! an AST as deep as the chain. So every text is scanned first, in one pass with no recursion, and refused
//! past these limits — which real policies never reach — with an error naming the limit:
//!
//! - [`MAX_NESTING`]: brackets `(` `[` `{` and `if … then … else` each count one level;
//! - [`MAX_EXPRESSION_DEPTH`]: an upper bound of the AST's depth — along every path, the operators of each
//!   enclosing expression (binary and unary operators, `.` accesses, calls and indexes, `if`, `in`, `has`,
//!   `like`, `is`, and the `when`/`unless` clauses), plus one per level;
//! - [`MAX_TEXT_BYTES`] and [`MAX_POLICIES_PER_TEXT`] for a text of many policies (a file, a validate
//!   request), [`vouch_types::MAX_POLICY_BYTES`] for one policy.
//!
//! The scan skips string literals (with their escapes) and `//` comments as Cedar's lexer does, so a
//! bracket inside a string is not counted. Anything it cannot make sense of is left to Cedar, which refuses
//! it: the scan only ever refuses what is too big, never what is malformed.

use std::cell::Cell;

use serde::Serialize;

use crate::engine::PolicyErrors;

/// The deepest nesting accepted: brackets and `if … then … else`, each one level (the braces of a `when`
/// clause and the parentheses of the scope count too).
pub const MAX_NESTING: usize = 32;
/// The deepest expression accepted, as the scan bounds it (see the module's documentation): a `||` of 250
/// comparisons fits. Decisions evaluate on the caller's thread (a tokio worker: 2 MiB), and Cedar's evaluator
/// takes about 4.4 KiB per level in a debug build: 256 levels stay under 1.2 MiB, clear of the 100 KiB
/// reserve below which Cedar gives up (a policy that errs is skipped, as if it were not there).
pub const MAX_EXPRESSION_DEPTH: usize = 256;
/// The longest text of several policies accepted (a file, a validate request).
pub const MAX_TEXT_BYTES: usize = 256 * 1024;
/// The most policies one text may hold.
pub const MAX_POLICIES_PER_TEXT: usize = 1_000;

/// The stack Cedar parses, validates and compiles on. The pre-scan's limits keep what Cedar needs far below
/// this (32 levels of brackets take about 0.5 MiB in a debug build, an expression 256 deep under 1.2 MiB to
/// validate): the margin is for a shape the scan does not foresee. Reserved, not committed, until used.
pub const PARSER_STACK_BYTES: usize = 64 * 1024 * 1024;

thread_local! {
    /// Set on the parser's own thread, so that nested calls run in place.
    static ON_PARSER_STACK: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` on a thread of its own with [`PARSER_STACK_BYTES`] of stack (in place when already on one), so
/// that Cedar's recursion never runs on a caller's small stack (a tokio worker has 2 MiB). The caller
/// waits: this costs a thread start (tens of µs) per parse, never anything per decision.
pub(crate) fn on_parser_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, PolicyErrors> {
    if ON_PARSER_STACK.with(Cell::get) {
        return Ok(f());
    }
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("vouch-policy-parser".into())
            .stack_size(PARSER_STACK_BYTES)
            .spawn_scoped(scope, || {
                ON_PARSER_STACK.with(|on| on.set(true));
                f()
            })
            .map_err(|e| {
                PolicyErrors::one(
                    None,
                    format!("cannot start the policy parser's thread: {e}"),
                )
            })?;
        handle
            .join()
            .map_err(|_| PolicyErrors::one(None, "the policy parser failed on this text"))
    })
}

/// A limit a policy text went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PolicyLimit {
    /// One policy's text is too long.
    #[error("policy is {bytes} bytes long; the limit is {limit} bytes")]
    PolicyBytes {
        /// Its length.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A text of several policies is too long.
    #[error("the policy text is {bytes} bytes long; the limit is {limit} bytes")]
    TextBytes {
        /// Its length.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A text holds too many policies.
    #[error("the policy text holds {count} policies; the limit is {limit}")]
    Policies {
        /// How many (statements ended by `;`).
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// Brackets and `if`s nest too deep.
    #[error(
        "policy nests {depth} levels deep (brackets and if-then-else count one level each); \
         the limit is {limit}"
    )]
    Nesting {
        /// The deepest nesting found.
        depth: usize,
        /// The limit.
        limit: usize,
    },
    /// An expression chains too many operators.
    #[error(
        "policy's expression is {depth} operators deep (chained operators, `.` accesses and `when` \
         clauses each count one); the limit is {limit}"
    )]
    ExpressionDepth {
        /// The depth found.
        depth: usize,
        /// The limit.
        limit: usize,
    },
}

impl PolicyLimit {
    /// Whether the limit is on size (answered 413 by the API) rather than on shape (422).
    pub fn is_size(&self) -> bool {
        matches!(self, Self::PolicyBytes { .. } | Self::TextBytes { .. })
    }
}

/// Checks one policy's text: its length, nesting and expression depth.
pub fn check_policy_text(text: &str) -> Result<(), PolicyLimit> {
    if text.len() > vouch_types::MAX_POLICY_BYTES {
        return Err(PolicyLimit::PolicyBytes {
            bytes: text.len(),
            limit: vouch_types::MAX_POLICY_BYTES,
        });
    }
    scan(text).map(|_| ())
}

/// Checks a text of several policies: its length, how many it holds, and each one's nesting and
/// expression depth.
pub fn check_text(text: &str) -> Result<(), PolicyLimit> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(PolicyLimit::TextBytes {
            bytes: text.len(),
            limit: MAX_TEXT_BYTES,
        });
    }
    let shape = scan(text)?;
    if shape.policies > MAX_POLICIES_PER_TEXT {
        return Err(PolicyLimit::Policies {
            count: shape.policies,
            limit: MAX_POLICIES_PER_TEXT,
        });
    }
    Ok(())
}

/// What the scan measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The deepest nesting (brackets and `if`s).
    pub nesting: usize,
    /// The deepest expression (the bound described in the module's documentation).
    pub depth: usize,
    /// Statements ended by `;` outside any bracket (and an unfinished last one).
    pub policies: usize,
}

/// Operator tiers, loosest first: `||`; `&&` (and the `when` clauses of a policy); relations (`==` … `in`,
/// `has`, `like`, `is`); `+ -`; `* / %`; prefix `! -`; member access (`.`, calls, indexes). A chain of one
/// tier is left-deep in the AST, one node per operator.
const TIERS: usize = 7;
const OR: usize = 0;
const AND: usize = 1;
const REL: usize = 2;
const ADD: usize = 3;
const MUL: usize = 4;
const UNARY: usize = 5;
const MEMBER: usize = 6;

/// One open bracket (or the top level). Commas (and a record's `:`) separate independent expressions, so a
/// frame measures per segment.
#[derive(Debug, Default, Clone, Copy)]
struct Frame {
    /// Operators of each tier in the chains being read.
    cur: [usize; TIERS],
    /// The deepest operand finished so far in each tier's chain.
    sub: [usize; TIERS],
    /// `if`s in this segment: each nests what follows it in the segment one level deeper.
    ifs: usize,
    /// The deepest finished part of this segment (`if`, `then` and `else` start a new part).
    part: usize,
    /// The deepest finished segment.
    best: usize,
    /// The last token ended an operand: `-` is then binary, `(` and `[` a call or an index.
    operand: bool,
    /// A `has` is in the chain: its dotted path (RFC 62) expands to a `&&` chain of `has` on ever longer
    /// accesses, so each `.` after it counts twice.
    has: bool,
}

impl Frame {
    /// Ends the chains of the tiers above `tier`: their operands are finished.
    fn close_above(&mut self, tier: usize) {
        for t in (tier + 1..TIERS).rev() {
            let v = self.cur[t] + self.sub[t];
            self.sub[t - 1] = self.sub[t - 1].max(v);
            self.cur[t] = 0;
            self.sub[t] = 0;
        }
    }

    fn op(&mut self, tier: usize, weight: usize) {
        self.close_above(tier);
        self.cur[tier] += weight;
        self.operand = false;
        if tier < REL {
            self.has = false;
        }
    }

    /// An operand of depth `depth` (0 for a literal or a name, a bracket's depth otherwise).
    fn operand(&mut self, depth: usize) {
        self.sub[MEMBER] = self.sub[MEMBER].max(depth);
        self.operand = true;
    }

    /// Ends the current part (before `if`, `then`, `else`, and at the end of the segment).
    fn close_part(&mut self) {
        self.close_above(OR);
        self.part = self.part.max(self.cur[OR] + self.sub[OR]);
        self.cur[OR] = 0;
        self.sub[OR] = 0;
        self.operand = false;
        self.has = false;
    }

    /// Ends the current segment; returns how many `if`s it closes.
    fn end_segment(&mut self) -> usize {
        self.close_part();
        self.best = self.best.max(self.ifs + self.part);
        self.part = 0;
        std::mem::take(&mut self.ifs)
    }
}

/// Measures `text` in one pass, with no recursion and at most [`MAX_NESTING`] + 1 frames. Past the nesting
/// limit only the nesting is followed (so the error says how deep the text nests).
pub fn scan(text: &str) -> Result<Shape, PolicyLimit> {
    let b = text.as_bytes();
    let mut stack: Vec<Frame> = vec![Frame::default()];
    // The `if`s open in every frame of the stack.
    let mut ifs_open = 0usize;
    let mut max_nesting = 0usize;
    // Past MAX_NESTING: the nesting reached then, and how many brackets (and `if`s, which are not closed
    // again: an estimate) were opened beyond it.
    let mut over: Option<(usize, usize)> = None;
    let mut policies = 0usize;
    let mut max_depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        let top_level = stack.len() == 1;
        // The frame being read (the stack is never empty: the top level is never popped).
        let Some(top) = stack.last_mut() else { break };
        match c {
            b'"' => {
                // A string literal: `\` escapes the next character; an unterminated one runs to the end
                // (Cedar refuses it).
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                top.operand(0);
            }
            b'/' if next == Some(b'/') => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                if let Some((base, n)) = over.as_mut() {
                    *n += 1;
                    max_nesting = max_nesting.max(*base + *n);
                } else {
                    if top.operand {
                        // A call or an index: one more node of the member chain.
                        top.op(MEMBER, 1);
                    }
                    let nesting = stack.len() + ifs_open;
                    max_nesting = max_nesting.max(nesting);
                    if nesting > MAX_NESTING {
                        over = Some((nesting - 1, 1));
                    } else {
                        stack.push(Frame::default());
                    }
                }
            }
            b')' | b']' | b'}' => {
                if let Some((_, n)) = over.as_mut() {
                    *n = n.saturating_sub(1);
                } else if stack.len() > 1
                    && let Some(mut frame) = stack.pop()
                {
                    ifs_open = ifs_open.saturating_sub(frame.end_segment());
                    if let Some(parent) = stack.last_mut() {
                        parent.operand(frame.best + 1);
                    }
                }
            }
            // Past the nesting limit only `if` still counts; everything else is skipped.
            c if over.is_some() && (c.is_ascii_alphabetic() || c == b'_') => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                if let Some((base, n)) = over.as_mut()
                    && &b[start..i] == b"if"
                {
                    *n += 1;
                    max_nesting = max_nesting.max(*base + *n);
                }
                continue;
            }
            _ if over.is_some() => {}
            b':' if next == Some(b':') => i += 1,
            b',' | b':' => ifs_open = ifs_open.saturating_sub(top.end_segment()),
            b';' => {
                ifs_open = ifs_open.saturating_sub(top.end_segment());
                if top_level {
                    policies += 1;
                    max_depth = max_depth.max(top.best);
                    *top = Frame::default();
                }
            }
            b'|' if next == Some(b'|') => {
                top.op(OR, 1);
                i += 1;
            }
            b'&' if next == Some(b'&') => {
                top.op(AND, 1);
                i += 1;
            }
            b'=' | b'!' | b'<' | b'>' if next == Some(b'=') => {
                top.op(REL, 1);
                i += 1;
            }
            b'=' | b'<' | b'>' => top.op(REL, 1),
            b'+' => top.op(ADD, 1),
            b'-' if top.operand => top.op(ADD, 1),
            b'-' | b'!' => top.op(UNARY, 1),
            b'*' | b'/' | b'%' => top.op(MUL, 1),
            b'.' => {
                let weight = if top.has { 2 } else { 1 };
                top.op(MEMBER, weight);
            }
            b'0'..=b'9' => {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                top.operand(0);
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                match &b[start..i] {
                    b"if" => {
                        top.close_part();
                        top.ifs += 1;
                        ifs_open += 1;
                        let nesting = stack.len() - 1 + ifs_open;
                        max_nesting = max_nesting.max(nesting);
                        if nesting > MAX_NESTING {
                            over = Some((nesting, 0));
                        }
                    }
                    b"then" | b"else" => top.close_part(),
                    b"in" | b"is" | b"like" => top.op(REL, 1),
                    b"has" => {
                        top.op(REL, 1);
                        top.has = true;
                    }
                    // A policy's conditions are joined by `&&`; `unless` negates its own.
                    b"when" => top.op(AND, 1),
                    b"unless" => {
                        top.op(AND, 1);
                        top.op(UNARY, 1);
                    }
                    _ => top.operand(0),
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if over.is_some() {
        return Err(PolicyLimit::Nesting {
            depth: max_nesting,
            limit: MAX_NESTING,
        });
    }
    // Unclosed brackets and an unfinished last statement (Cedar refuses them) still count.
    while stack.len() > 1 {
        if let Some(mut frame) = stack.pop() {
            frame.end_segment();
            if let Some(parent) = stack.last_mut() {
                parent.operand(frame.best + 1);
            }
        }
    }
    if let Some(top) = stack.last_mut() {
        let unfinished = top.operand || top.cur.iter().chain(&top.sub).any(|&n| n > 0);
        top.end_segment();
        if unfinished || top.best > 0 {
            policies += 1;
        }
        max_depth = max_depth.max(top.best);
    }
    if max_depth > MAX_EXPRESSION_DEPTH {
        return Err(PolicyLimit::ExpressionDepth {
            depth: max_depth,
            limit: MAX_EXPRESSION_DEPTH,
        });
    }
    Ok(Shape {
        nesting: max_nesting,
        depth: max_depth,
        policies,
    })
}
