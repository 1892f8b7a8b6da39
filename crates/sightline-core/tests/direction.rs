//! The crates point one way — `schema ← store ← core ← {sources, server, forward} ← cli` — and
//! the middle knows no HTTP. Read from `cargo metadata` and `cargo tree`, so a dependency added
//! in the wrong direction fails here, not in review.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

fn cargo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Workspace crate → the workspace crates it depends on (normal dependencies only: dev-only
/// edges, like the test kit, do not ship).
fn edges() -> BTreeMap<String, Vec<String>> {
    let meta: Value =
        serde_json::from_str(&cargo(&["metadata", "--format-version", "1", "--no-deps"])).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let names: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null() && names.contains(&d["name"].as_str().unwrap()))
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

#[test]
fn crates_point_one_way() {
    let e = edges();
    let deps = |c: &str| e.get(c).cloned().unwrap_or_else(|| panic!("no crate {c}"));
    assert!(deps("sightline-schema").is_empty());
    assert_eq!(deps("sightline-store"), ["sightline-schema"]);
    let mut core = deps("sightline-core");
    core.sort();
    assert_eq!(core, ["sightline-schema", "sightline-store"]);
    for sibling in ["sightline-sources", "sightline-server", "sightline-forward"] {
        let d = deps(sibling);
        assert!(
            d.contains(&"sightline-core".to_string()),
            "{sibling} builds on the core"
        );
        for other in [
            "sightline-sources",
            "sightline-server",
            "sightline-forward",
            "sightline",
        ] {
            assert!(
                !d.contains(&other.to_string()),
                "{sibling} depends on {other}: {d:?}"
            );
        }
    }
    // Only the binary composes everything.
    let cli = deps("sightline");
    for c in [
        "sightline-core",
        "sightline-sources",
        "sightline-server",
        "sightline-forward",
    ] {
        assert!(cli.contains(&c.to_string()), "the CLI composes {c}");
    }
    for (name, d) in &e {
        if name != "sightline" && name != "sightline-testkit" {
            assert!(
                !d.contains(&"sightline".to_string()),
                "{name} depends on the binary"
            );
        }
    }
}

#[test]
fn the_core_knows_no_http() {
    let tree = cargo(&[
        "tree",
        "-p",
        "sightline-core",
        "-e",
        "normal",
        "--prefix",
        "none",
    ]);
    for line in tree.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        assert!(
            !matches!(
                name,
                "axum" | "axum-core" | "hyper" | "hyper-util" | "tower" | "http-body"
            ),
            "sightline-core depends on {name}"
        );
    }
}
