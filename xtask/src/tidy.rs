//! `cargo xtask tidy`: the dependency direction of the workspace, checked from the manifests.
//!
//! The layering (see ARCHITECTURE.md) is `kms-core` ← backends ← `kms-cache` ← `kms-http` ←
//! `kms-server`, with `s3-bucket-encryption` needing only `kms-core` and `s3-object-store` only
//! `kms-core` and the local backend's durable-write helpers. It is easy to break by one
//! line in a `Cargo.toml`, and nothing else would notice, so every manifest under `crates/` is
//! read and each internal dependency edge is checked against the table in [`allowed`]. Library
//! crates must not use `anyhow`: they return their own error enums. The binaries (`kms-server`,
//! and the developer tool `kms-bench`) sit on top: they may use anything below them, and nothing
//! depends on them.

use std::fmt;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use toml::{Table, Value};

/// The place a crate holds in the layering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layer {
    Core,
    Backend,
    Cache,
    S3,
    ObjectStore,
    Http,
    Server,
    Bench,
}

impl Layer {
    fn of(name: &str) -> Option<Layer> {
        match name {
            "kms-core" => Some(Layer::Core),
            "kms-cache" => Some(Layer::Cache),
            "s3-bucket-encryption" => Some(Layer::S3),
            "s3-object-store" => Some(Layer::ObjectStore),
            "kms-http" => Some(Layer::Http),
            "kms-server" => Some(Layer::Server),
            "kms-bench" => Some(Layer::Bench),
            // `kms-backend-local` now, `kms-backend-vault` next: every backend has one shape.
            _ if name.starts_with("kms-backend-") => Some(Layer::Backend),
            _ => None,
        }
    }

    /// Binaries may use `anyhow`; library crates return their own error enums.
    fn is_binary(self) -> bool {
        matches!(self, Layer::Server | Layer::Bench)
    }
}

/// Which section of a manifest a dependency was declared in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepKind {
    /// `[dependencies]` (also under `[target.'cfg(…)'.dependencies]`).
    Normal,
    /// `[dev-dependencies]`.
    Dev,
    /// `[build-dependencies]`; held to the same rules as normal dependencies.
    Build,
}

impl DepKind {
    const SECTIONS: [(&'static str, DepKind); 3] = [
        ("dependencies", DepKind::Normal),
        ("dev-dependencies", DepKind::Dev),
        ("build-dependencies", DepKind::Build),
    ];
}

impl fmt::Display for DepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let section = match self {
            DepKind::Normal => "[dependencies]",
            DepKind::Dev => "[dev-dependencies]",
            DepKind::Build => "[build-dependencies]",
        };
        f.write_str(section)
    }
}

/// One dependency, by the name of the package it brings in (renames resolved).
#[derive(Debug, PartialEq, Eq)]
pub struct Dep {
    /// The package name (the `package = "…"` of a renamed dependency).
    pub package: String,
    /// The section it was declared in.
    pub kind: DepKind,
}

/// What tidy needs from one crate manifest.
#[derive(Debug)]
pub struct Manifest {
    /// Where the manifest was read from, for messages.
    pub path: String,
    /// `package.name`.
    pub name: String,
    /// Every dependency of every kind, including target-specific ones.
    pub deps: Vec<Dep>,
}

/// Parses the parts of a `Cargo.toml` that tidy checks.
pub fn parse_manifest(path: &str, text: &str) -> Result<Manifest> {
    let table: Table = text
        .parse()
        .with_context(|| format!("{path}: not valid TOML"))?;
    let name = table
        .get("package")
        .and_then(|package| package.get("name"))
        .and_then(Value::as_str)
        .with_context(|| format!("{path}: no package.name"))?
        .to_owned();

    let mut deps = Vec::new();
    collect_deps(&table, &mut deps);
    if let Some(targets) = table.get("target").and_then(Value::as_table) {
        for target in targets.values().filter_map(Value::as_table) {
            collect_deps(target, &mut deps);
        }
    }
    Ok(Manifest {
        path: path.to_owned(),
        name,
        deps,
    })
}

fn collect_deps(table: &Table, deps: &mut Vec<Dep>) {
    for (section, kind) in DepKind::SECTIONS {
        let Some(entries) = table.get(section).and_then(Value::as_table) else {
            continue;
        };
        for (key, spec) in entries {
            let package = spec.get("package").and_then(Value::as_str).unwrap_or(key);
            deps.push(Dep {
                package: package.to_owned(),
                kind,
            });
        }
    }
}

/// The layers a crate of layer `from` may depend on through a dependency of `kind`.
fn allowed(from: Layer, kind: DepKind) -> &'static [Layer] {
    use Layer::*;
    match (from, kind) {
        (Core, _) => &[],
        (Backend | S3, _) => &[Core],
        // The cache's tests run it in front of a real backend.
        (Cache, DepKind::Dev) => &[Core, Backend],
        (Cache, _) => &[Core],
        // Objects are written with the same durable-write helpers as keys.
        (ObjectStore, _) => &[Core, Backend],
        (Http, _) => &[Core, Backend, Cache, S3, ObjectStore],
        (Server | Bench, _) => &[Core, Backend, Cache, S3, ObjectStore, Http],
    }
}

/// Every layering and `anyhow` violation among `manifests`, as one message each.
pub fn check(manifests: &[Manifest]) -> Vec<String> {
    let internal: Vec<&str> = manifests.iter().map(|m| m.name.as_str()).collect();
    let mut problems = Vec::new();
    for manifest in manifests {
        let Some(layer) = Layer::of(&manifest.name) else {
            problems.push(format!(
                "{}: crate `{}` has no place in the layering; add it to xtask/src/tidy.rs",
                manifest.path, manifest.name
            ));
            continue;
        };
        for dep in &manifest.deps {
            if !layer.is_binary() && dep.package == "anyhow" {
                problems.push(format!(
                    "{}: library crate `{}` must not use anyhow ({}); return its own error enum",
                    manifest.path, manifest.name, dep.kind
                ));
            }
            if dep.package == manifest.name || !internal.contains(&dep.package.as_str()) {
                continue;
            }
            let permitted = allowed(layer, dep.kind);
            if !Layer::of(&dep.package).is_some_and(|to| permitted.contains(&to)) {
                problems.push(format!(
                    "{}: `{}` must not depend on `{}` ({}); it may depend on: {}",
                    manifest.path,
                    manifest.name,
                    dep.package,
                    dep.kind,
                    describe(permitted)
                ));
            }
        }
    }
    problems
}

fn describe(layers: &[Layer]) -> String {
    if layers.is_empty() {
        return "no workspace crate".to_owned();
    }
    let names: Vec<&str> = layers
        .iter()
        .map(|layer| match layer {
            Layer::Core => "kms-core",
            Layer::Backend => "kms-backend-*",
            Layer::Cache => "kms-cache",
            Layer::S3 => "s3-bucket-encryption",
            Layer::ObjectStore => "s3-object-store",
            Layer::Http => "kms-http",
            Layer::Server => "kms-server",
            Layer::Bench => "kms-bench",
        })
        .collect();
    names.join(", ")
}

/// Reads every `crates/*/Cargo.toml` under `root`, in a stable order.
pub fn read_manifests(root: &Path) -> Result<Vec<Manifest>> {
    let crates = root.join("crates");
    let mut paths: Vec<_> = fs::read_dir(&crates)
        .with_context(|| format!("cannot list {}", crates.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("Cargo.toml")))
        .filter(|path| path.is_file())
        .collect();
    paths.sort();

    paths
        .iter()
        .map(|path| {
            let text = fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let shown = path.strip_prefix(root).unwrap_or(path);
            parse_manifest(&shown.display().to_string(), &text)
        })
        .collect()
}

/// The task: prints what it checks and fails with every violation found.
pub fn run(root: &Path) -> Result<()> {
    let manifests = read_manifests(root)?;
    eprintln!(
        "$ tidy: checking the dependency direction of {} crates/*/Cargo.toml",
        manifests.len()
    );
    let problems = check(&manifests);
    if !problems.is_empty() {
        bail!(
            "tidy found {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    eprintln!("tidy: layering holds, no anyhow in library crates");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(name: &str, body: &str) -> Manifest {
        let text = format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\n{body}");
        parse_manifest(&format!("crates/{name}/Cargo.toml"), &text).unwrap()
    }

    fn workspace(extra: Vec<Manifest>) -> Vec<Manifest> {
        let mut all = vec![
            manifest("kms-core", "[dependencies]\nserde = \"1\"\n"),
            manifest(
                "kms-backend-local",
                "[dependencies]\nkms-core.workspace = true\n",
            ),
            manifest(
                "kms-cache",
                "[dependencies]\nkms-core.workspace = true\n\
                 [dev-dependencies]\nkms-backend-local.workspace = true\n",
            ),
            manifest(
                "s3-bucket-encryption",
                "[dependencies]\nkms-core = { path = \"../kms-core\" }\n",
            ),
            manifest(
                "kms-http",
                "[dependencies]\nkms-core.workspace = true\nkms-cache.workspace = true\n\
                 kms-backend-local.workspace = true\ns3-bucket-encryption.workspace = true\n",
            ),
            manifest(
                "kms-server",
                "[dependencies]\nkms-http.workspace = true\nanyhow.workspace = true\n",
            ),
        ];
        all.extend(extra);
        all
    }

    fn replace(mut all: Vec<Manifest>, changed: Manifest) -> Vec<Manifest> {
        all.retain(|m| m.name != changed.name);
        all.push(changed);
        all
    }

    #[test]
    fn the_intended_layering_passes() {
        assert_eq!(check(&workspace(vec![])), Vec::<String>::new());
    }

    #[test]
    fn a_future_vault_backend_may_depend_on_core_only() {
        let vault = manifest(
            "kms-backend-vault",
            "[dependencies]\nkms-core.workspace = true\n",
        );
        assert!(check(&workspace(vec![vault])).is_empty());

        let bad = manifest(
            "kms-backend-vault",
            "[dependencies]\nkms-cache.workspace = true\n",
        );
        let problems = check(&workspace(vec![bad]));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("`kms-backend-vault` must not depend on `kms-cache`"));
    }

    #[test]
    fn core_depending_on_a_backend_is_refused() {
        let core = manifest(
            "kms-core",
            "[dependencies]\nkms-backend-local.workspace = true\n",
        );
        let problems = check(&replace(workspace(vec![]), core));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("crates/kms-core/Cargo.toml: `kms-core` must not depend"));
    }

    #[test]
    fn backends_in_the_cache_are_allowed_for_tests_only() {
        let cache = manifest(
            "kms-cache",
            "[dependencies]\nkms-backend-local.workspace = true\n",
        );
        let problems = check(&replace(workspace(vec![]), cache));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("[dependencies]"));
    }

    #[test]
    fn s3_bucket_encryption_needs_only_core() {
        let s3 = manifest(
            "s3-bucket-encryption",
            "[dependencies]\nkms-cache.workspace = true\n",
        );
        assert_eq!(check(&replace(workspace(vec![]), s3)).len(), 1);
    }

    #[test]
    fn nothing_but_the_server_depends_on_http_or_server() {
        let cache = manifest(
            "kms-cache",
            "[dev-dependencies]\nkms-http.workspace = true\n",
        );
        let http = manifest("kms-http", "[dependencies]\nkms-server.workspace = true\n");
        let problems = check(&replace(replace(workspace(vec![]), cache), http));
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn renamed_and_target_specific_dependencies_are_seen() {
        let core = manifest(
            "kms-core",
            "[target.'cfg(unix)'.dependencies]\nbackend = { package = \"kms-backend-local\", \
             path = \"../kms-backend-local\" }\n",
        );
        let problems = check(&replace(workspace(vec![]), core));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("`kms-backend-local`"));
    }

    #[test]
    fn build_dependencies_follow_the_normal_rules() {
        let core = manifest(
            "kms-core",
            "[build-dependencies]\nkms-cache.workspace = true\n",
        );
        let problems = check(&replace(workspace(vec![]), core));
        assert!(problems[0].contains("[build-dependencies]"), "{problems:?}");
    }

    #[test]
    fn anyhow_is_refused_in_every_library_crate_but_allowed_in_the_server() {
        let cache = manifest("kms-cache", "[dev-dependencies]\nanyhow = \"1\"\n");
        let http = manifest("kms-http", "[dependencies]\nanyhow.workspace = true\n");
        let problems = check(&replace(replace(workspace(vec![]), cache), http));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| p.contains("must not use anyhow")));
    }

    #[test]
    fn the_bench_is_a_binary_on_top_that_nothing_depends_on() {
        let bench = manifest(
            "kms-bench",
            "[dependencies]\nkms-http.workspace = true\nkms-backend-local.workspace = true\n\
             anyhow.workspace = true\n",
        );
        assert!(check(&workspace(vec![bench])).is_empty());

        let bench = manifest("kms-bench", "[dependencies]\nkms-server.workspace = true\n");
        let server = manifest(
            "kms-server",
            "[dev-dependencies]\nkms-bench.workspace = true\n",
        );
        let problems = check(&replace(workspace(vec![bench]), server));
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn an_unknown_crate_must_be_placed_in_the_layering() {
        let problems = check(&workspace(vec![manifest("kms-extra", "")]));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("has no place in the layering"));
    }

    #[test]
    fn external_dependencies_are_not_edges() {
        let core = manifest(
            "kms-core",
            "[dependencies]\nserde_json = \"1\"\ntokio = \"1\"\n",
        );
        assert!(check(&replace(workspace(vec![]), core)).is_empty());
    }

    #[test]
    fn a_manifest_without_a_name_is_an_error() {
        let err = parse_manifest("x/Cargo.toml", "[dependencies]\n").unwrap_err();
        assert!(err.to_string().contains("no package.name"));
    }

    #[test]
    fn the_workspace_follows_the_layering() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let problems = check(&read_manifests(root).unwrap());
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
