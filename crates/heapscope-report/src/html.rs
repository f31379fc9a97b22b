//! The self-contained HTML report: one file, no network, assets embedded at build time.
//!
//! The profile's data goes in a `<script type="application/json">` block, escaped so that no
//! string from the traced program can close the block or start markup; the page's script reads
//! it with `JSON.parse` and builds the DOM with `textContent` only.

use heapscope_core::profile::{Profile, View};

use crate::html_data;
use crate::ReportError;

const TEMPLATE: &str = include_str!("../assets/report.html");
const CSS: &str = include_str!("../assets/report.css");
const JS: [&str; 6] = [
    include_str!("../assets/util.js"),
    include_str!("../assets/flame.js"),
    include_str!("../assets/timeline.js"),
    include_str!("../assets/tables.js"),
    include_str!("../assets/processes.js"),
    include_str!("../assets/app.js"),
];

/// Makes JSON safe inside `<script>`: `<`, `>` and `&` become `\u003c`-style escapes (so no
/// `</script>` or `<!--` can appear), and U+2028/U+2029 are escaped for old JS parsers.
/// Outside JSON strings none of these characters occur, so the result parses to the same value.
pub fn escape_json_for_script(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Renders the report, showing `initial` first (all three views are embedded).
pub fn render(profile: &Profile, initial: View) -> Result<String, ReportError> {
    let json = escape_json_for_script(&html_data::build_json(profile, initial)?);
    let js = JS.join("\n");
    // The data goes in last, so nothing inside it is ever taken for a placeholder.
    Ok(TEMPLATE
        .replacen("{{CSS}}", CSS, 1)
        .replacen("{{JS}}", &js, 1)
        .replacen("{{DATA}}", &json, 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{profile_from_json, synthetic};

    const HOSTILE: &str = "<img src=x onerror=alert(1)>.py";

    #[test]
    fn escapes_script_breakers() {
        let s = escape_json_for_script("\"</script><!--&\u{2028}\u{2029}\"");
        assert_eq!(
            s,
            "\"\\u003c/script\\u003e\\u003c!--\\u0026\\u2028\\u2029\""
        );
        let back: String = serde_json::from_str(&s).expect("still JSON");
        assert_eq!(back, "</script><!--&\u{2028}\u{2029}");
    }

    #[test]
    fn hostile_names_never_appear_raw() {
        let json = format!(
            r#"{{"meta": {{"command": ["{HOSTILE}", "</script><script>alert(2)</script>"]}},
                "frames": [["{HOSTILE}", "<b>f</b>", 1]], "stacks": [{{"frames": [0]}}],
                "at_peak": [[0, 10, 1]]}}"#
        );
        let html = render(&profile_from_json(&json).expect("valid"), View::Peak).expect("renders");
        assert!(!html.contains("<img"));
        assert!(!html.contains("<b>f"));
        assert_eq!(
            html.matches("</script>").count(),
            2,
            "only the two real script blocks close"
        );
        assert!(!html.contains("{{"), "every placeholder filled");
        assert!(html.contains("\\u003cimg src=x onerror=alert(1)\\u003e.py"));
    }

    #[test]
    fn hostile_process_commands_never_appear_raw() {
        use heapscope_core::profile::ProcessInfo;
        let mut p = synthetic(20, 3);
        for pid in [1, 2] {
            p.processes.push(ProcessInfo {
                pid,
                command: vec![HOSTILE.into(), "</script><script>alert(3)</script>".into()],
                note: (pid == 2).then(|| HOSTILE.to_owned()),
                ..ProcessInfo::default()
            });
        }
        let html = render(&p, View::Peak).expect("renders");
        assert!(!html.contains("<img"));
        assert_eq!(html.matches("</script>").count(), 2);
        assert!(html.contains("process-select"));
    }

    #[test]
    fn no_network_references() {
        let html = render(&synthetic(10, 1), View::Peak).expect("renders");
        // The SVG namespace is a name, not an address; nothing else may look like one.
        let html = html.replace("\"http://www.w3.org/2000/svg\"", "");
        for needle in [
            "http:", "https:", "//cdn", "src=", "<link", "@import", "url(", "fetch(",
        ] {
            assert!(!html.contains(needle), "found {needle}");
        }
    }

    #[test]
    fn hundred_thousand_stacks_stay_small() {
        let html = render(&synthetic(100_000, 5), View::Peak).expect("renders");
        assert!(html.len() < 8 << 20, "{} bytes", html.len());
    }
}
