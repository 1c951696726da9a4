//! Reads the runnable parts of README.md: the `cargo run` lines, the fenced ```sh blocks that
//! start with a `# quickstart: NAME` marker, and their `# → STATUS {json}` answers.

use serde_json::Value;

pub fn text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The arguments of the README's `cargo run --release -- SUBCOMMAND …` line, as a newcomer
/// types them (without the trailing comment).
pub fn cargo_run_args(readme: &str, subcommand: &str) -> Vec<String> {
    let prefix = format!("cargo run --release -- {subcommand}");
    let line = readme
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("README has `{prefix}`"));
    let command = line.split('#').next().unwrap();
    let (_, args) = command.split_once(" -- ").unwrap();
    args.split_whitespace().map(str::to_string).collect()
}

/// The ```sh block whose first line is `# quickstart: NAME`, without its fences.
pub fn block(readme: &str, name: &str) -> String {
    let start = format!("```sh\n# quickstart: {name}\n");
    let at = readme
        .find(&start)
        .unwrap_or_else(|| panic!("README has a block starting with {start:?}"));
    let body = &readme[at + "```sh\n".len()..];
    body[..body.find("\n```").expect("the block is closed")].to_string()
}

/// `NAME=...` at the start of a line of `script` replaced by `NAME=value`; the line must be
/// there (the README's placeholders for the address and the token).
pub fn set_variable(script: &str, name: &str, value: &str) -> String {
    let prefix = format!("{name}=");
    let mut found = false;
    let lines: Vec<String> = script
        .lines()
        .map(|line| {
            if line.starts_with(&prefix) && !found {
                found = true;
                format!("{prefix}'{value}'")
            } else {
                line.to_string()
            }
        })
        .collect();
    assert!(found, "the block sets {name}");
    lines.join("\n") + "\n"
}

/// One `# → STATUS {json}` line: the answer the README shows for the curl before it.
#[derive(Debug)]
pub struct Answer {
    pub line: String,
    pub status: u16,
    pub shape: Option<Value>,
}

pub fn answers(block: &str) -> Vec<Answer> {
    block
        .lines()
        .filter_map(|line| line.trim().strip_prefix("# → "))
        .map(|shown| {
            let (status, json) = shown.split_once(' ').unwrap_or((shown, ""));
            Answer {
                line: shown.to_string(),
                status: status
                    .parse()
                    .unwrap_or_else(|_| panic!("a status in {shown:?}")),
                shape: (!json.trim().is_empty()).then(|| {
                    serde_json::from_str(json)
                        .unwrap_or_else(|e| panic!("{shown:?} shows JSON: {e}"))
                }),
            }
        })
        .collect()
}

/// Does `actual` have the shape the README shows? Objects: every field shown, with the value
/// shown (others may be there too); arrays: as many items, each of the shape shown; `"…"`:
/// any value.
pub fn check_shape(shown: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (shown, actual) {
        (Value::String(s), _) if s == "…" => Ok(()),
        (Value::Object(fields), Value::Object(got)) => fields.iter().try_for_each(|(k, v)| {
            let inner = format!("{path}.{k}");
            let value = got.get(k).ok_or(format!("{inner} is missing"))?;
            check_shape(v, value, &inner)
        }),
        (Value::Array(items), Value::Array(got)) if items.len() == got.len() => items
            .iter()
            .zip(got)
            .enumerate()
            .try_for_each(|(i, (v, g))| check_shape(v, g, &format!("{path}[{i}]"))),
        _ if shown == actual => Ok(()),
        _ => Err(format!("{path}: README shows {shown}, got {actual}")),
    }
}

#[test]
fn the_shape_check_can_fail() {
    let shown = serde_json::json!({"id": "…", "items": [{"state": "pending"}]});
    let good = serde_json::json!({"id": 7, "extra": 1, "items": [{"state": "pending", "x": 0}]});
    assert_eq!(check_shape(&shown, &good, ""), Ok(()));
    for bad in [
        serde_json::json!({"items": [{"state": "pending"}]}),
        serde_json::json!({"id": 1, "items": [{"state": "dead"}]}),
        serde_json::json!({"id": 1, "items": []}),
    ] {
        assert!(check_shape(&shown, &bad, "").is_err(), "{bad}");
    }
}
