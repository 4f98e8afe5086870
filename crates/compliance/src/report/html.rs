//! The report for people: one self-contained HTML page (inline style, no script, no external resource) with
//! the summary figures and a pass/fail bar, the CRA Art. 14 deadlines, per framework a table of controls, per
//! failing control its devices with evidence, and per device its failing controls.
//!
//! Written by hand rather than with a template crate: the page has one shape, every dynamic value goes
//! through [`esc`] into element text or a quoted attribute (the only two contexts used), and a template
//! engine's proc-macro build would cost more than this file. Colours meet WCAG AA contrast on white.

use std::fmt::Write as _;

use super::{ReportError, Scope, Summary, control_token, failing_evidence, framework_title};
use crate::eval::ControlState;

/// `s` escaped for element text and double- or single-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The colour of the bar's passed part.
pub const PASS_COLOUR: [u8; 3] = [0x1b, 0x7a, 0x3a];
/// The colour of the bar's failed part.
pub const FAIL_COLOUR: [u8; 3] = [0xb3, 0x26, 0x1e];
/// The colour of the bar's not-applicable part.
pub const NA_COLOUR: [u8; 3] = [0x6b, 0x6b, 0x6b];

fn hex([r, g, b]: [u8; 3]) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

fn style() -> String {
    format!(
        "body{{font-family:system-ui,sans-serif;color:#1a1a1a;background:#fff;margin:0;padding:16px 24px;}}\
         h1{{font-size:1.6em;margin:0 0 4px}}h2{{margin-top:1.6em;border-bottom:1px solid #ccc}}\
         table{{border-collapse:collapse;margin:8px 0}}th,td{{border:1px solid #999;padding:3px 8px;\
         text-align:left;vertical-align:top}}th{{background:#eee}}td.n{{text-align:right}}\
         .figures{{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0;padding:0}}\
         .figures div{{border:1px solid #999;padding:6px 12px;min-width:110px}}\
         .figures dt{{font-size:.85em}}.figures dd{{margin:0;font-size:1.5em;font-weight:bold}}\
         .bar{{display:flex;height:32px;width:100%;border:1px solid #1a1a1a;margin:8px 0}}\
         .pass{{background:{}}}.fail{{background:{}}}.na{{background:{}}}\
         .fail-text{{color:{}}}.kev{{border:2px solid {};padding:4px 12px}}",
        hex(PASS_COLOUR),
        hex(FAIL_COLOUR),
        hex(NA_COLOUR),
        hex(FAIL_COLOUR),
        hex(FAIL_COLOUR)
    )
}

/// A share of `total`, as a CSS percentage with one decimal.
fn width(part: usize, total: usize) -> String {
    let tenths = if total == 0 {
        0
    } else {
        (part as u64 * 1000) / total as u64
    };
    format!("{}.{}%", tenths / 10, tenths % 10)
}

fn figure(out: &mut String, id: &str, label: &str, value: &str) {
    let _ = write!(
        out,
        "<div><dt>{}</dt><dd id=\"{}\">{}</dd></div>",
        esc(label),
        esc(id),
        esc(value)
    );
}

fn summary(out: &mut String, s: &Summary<'_>) {
    out.push_str("<section aria-labelledby=\"h-summary\"><h2 id=\"h-summary\">Summary</h2><dl class=\"figures\">");
    let figures = [
        ("fig-devices", "Devices", s.devices.to_string()),
        ("fig-controls", "Controls", s.controls.to_string()),
        ("fig-evaluated", "Evaluated", s.evaluated().to_string()),
        ("fig-passed", "Passed", s.passed.to_string()),
        ("fig-failed", "Failed", s.failed.to_string()),
        ("fig-na", "Not applicable", s.not_applicable.to_string()),
        ("fig-rate", "Pass rate", s.pass_rate_text()),
        ("fig-kev", "KEV findings", s.kev.len().to_string()),
    ];
    for (id, label, value) in &figures {
        figure(out, id, label, value);
    }
    out.push_str("</dl>");
    let total = s.evaluated();
    let _ = write!(
        out,
        "<div class=\"bar\" role=\"img\" aria-label=\"{} passed, {} failed, {} not applicable\">\
         <span class=\"pass\" style=\"width:{}\"></span><span class=\"fail\" style=\"width:{}\"></span>\
         <span class=\"na\" style=\"width:{}\"></span></div>",
        s.passed,
        s.failed,
        s.not_applicable,
        width(s.passed, total),
        width(s.failed, total),
        width(s.not_applicable, total)
    );
    if !s.kev.is_empty() {
        out.push_str(
            "<div class=\"kev\"><h3>Actively exploited vulnerabilities (CRA Art. 14)</h3>\
             <table><thead><tr><th scope=\"col\">Device</th><th scope=\"col\">CVE</th>\
             <th scope=\"col\">First seen</th><th scope=\"col\">Early warning due (24 h)</th>\
             <th scope=\"col\">Notification due (72 h)</th><th scope=\"col\">Ransomware</th></tr></thead><tbody>",
        );
        for k in &s.kev {
            let x = k.exploited;
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&k.device.label()),
                esc(x.cve.as_str()),
                x.first_seen,
                x.early_warning_due,
                x.notification_due,
                if x.ransomware { "known" } else { "not known" }
            );
        }
        out.push_str("</tbody></table></div>");
    }
    out.push_str("</section>");
}

fn frameworks(out: &mut String, scope: &Scope<'_>) {
    out.push_str("<section aria-labelledby=\"h-frameworks\"><h2 id=\"h-frameworks\">Controls by framework</h2>");
    for (f, ix) in scope.frameworks() {
        let _ = write!(
            out,
            "<h3>{}</h3><table><thead><tr><th scope=\"col\">Control</th><th scope=\"col\">Title</th>\
             <th scope=\"col\">Passed</th><th scope=\"col\">Failed</th><th scope=\"col\">Not applicable</th>\
             </tr></thead><tbody>",
            esc(framework_title(f))
        );
        for i in ix {
            let Some(c) = scope.catalogue.controls().get(i) else {
                continue;
            };
            let n = scope.counts(i);
            let id = if n.failed > 0 {
                format!(
                    "<a href=\"#c-{}\">{}</a>",
                    esc(&control_token(c)),
                    esc(&c.id)
                )
            } else {
                esc(&c.id)
            };
            let _ = write!(
                out,
                "<tr><th scope=\"row\">{id}</th><td>{}</td><td class=\"n\">{}</td><td class=\"n{}\">{}</td>\
                 <td class=\"n\">{}</td></tr>",
                esc(&c.title),
                n.passed,
                if n.failed > 0 { " fail-text" } else { "" },
                n.failed,
                n.not_applicable
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
}

fn failing_controls(out: &mut String, scope: &Scope<'_>) {
    let cat = scope.catalogue;
    out.push_str(
        "<section aria-labelledby=\"h-failing\"><h2 id=\"h-failing\">Failing controls</h2>",
    );
    let mut any = false;
    for (i, c) in cat.controls().iter().enumerate() {
        let failing: Vec<_> = scope
            .devices
            .iter()
            .filter(|a| a.result.controls.get(i) == Some(&ControlState::Fail))
            .collect();
        if failing.is_empty() {
            continue;
        }
        any = true;
        let _ = write!(
            out,
            "<h3 id=\"c-{}\">{} {}: {}</h3><table><thead><tr><th scope=\"col\">Device</th>\
             <th scope=\"col\">Evidence</th></tr></thead><tbody>",
            esc(&control_token(c)),
            esc(framework_title(c.framework)),
            esc(&c.id),
            esc(&c.title)
        );
        for a in failing {
            let _ = write!(
                out,
                "<tr><th scope=\"row\">{}</th><td><ul>",
                esc(&a.label())
            );
            for e in failing_evidence(cat, a.result, i) {
                let _ = write!(out, "<li>{}</li>", esc(&e.text));
            }
            out.push_str("</ul></td></tr>");
        }
        out.push_str("</tbody></table>");
    }
    if !any {
        out.push_str("<p>No control fails on any device.</p>");
    }
    out.push_str("</section>");
}

fn devices(out: &mut String, scope: &Scope<'_>) {
    let cat = scope.catalogue;
    out.push_str(
        "<section aria-labelledby=\"h-devices\"><h2 id=\"h-devices\">Devices</h2><table><thead><tr>\
         <th scope=\"col\">Device</th><th scope=\"col\">Evaluated</th><th scope=\"col\">Passed</th>\
         <th scope=\"col\">Failed</th><th scope=\"col\">Not applicable</th>\
         <th scope=\"col\">Failing controls</th></tr></thead><tbody>",
    );
    for a in scope.devices {
        let r = a.result;
        let count = |s: ControlState| r.controls.iter().filter(|&&x| x == s).count();
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{}<br><small>{}</small></th><td>{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td>",
            esc(&a.label()),
            r.device,
            r.at,
            count(ControlState::Pass),
            count(ControlState::Fail),
            count(ControlState::NotApplicable)
        );
        let failed = r.failed(cat);
        if failed.is_empty() {
            out.push_str("none");
        } else {
            out.push_str("<ul>");
            for c in failed {
                let _ = write!(
                    out,
                    "<li><a href=\"#c-{}\">{} {}</a>: {}</li>",
                    esc(&control_token(c)),
                    esc(c.framework.as_str()),
                    esc(&c.id),
                    esc(&c.title)
                );
            }
            out.push_str("</ul>");
        }
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table></section>");
}

/// The HTML report for `scope`.
pub fn render(scope: &Scope<'_>) -> Result<String, ReportError> {
    scope.validate()?;
    let title = if scope.title.is_empty() {
        "Vouch compliance report"
    } else {
        scope.title
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title>\
         <style>{}</style></head><body><main><h1>{}</h1><p>Period {} to {}; generated {} by Vouch {}.</p>",
        esc(title),
        style(),
        esc(title),
        scope.period.start,
        scope.period.end,
        scope.generated,
        esc(scope.version)
    );
    summary(&mut out, &scope.summary());
    frameworks(&mut out, scope);
    failing_controls(&mut out, scope);
    devices(&mut out, scope);
    out.push_str("</main></body></html>\n");
    Ok(out)
}
