//! The committed `completions/` and `man/` are what the current `socv` generates.
//!
//! Regenerate everything after changing the command line (of socv or leased):
//!
//! ```text
//! ./completions/generate.sh
//! ```
//!
//! which runs, from the top of the workspace:
//!
//! ```text
//! cargo run -q -- completions bash > completions/socv.bash
//! cargo run -q -- completions zsh > completions/_socv
//! cargo run -q -- completions fish > completions/socv.fish
//! rm -f man/*.1 man/*.8 && cargo run -q -- man --dir man
//! ```

use assert_cmd::Command;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const REGENERATE_ALL: &str = "./completions/generate.sh";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// socv with an environment that would break any command needing the daemon: generating must
/// not need one.
fn socv() -> Command {
    let mut cmd = Command::cargo_bin("socv").expect("the socv binary");
    cmd.env("SOCV_DAEMON", "not a url")
        .env_remove("DEVICE_MANAGER_URL");
    cmd
}

fn read_committed(path: &Path, regenerate: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); generate it with `{regenerate}` (or {REGENERATE_ALL})",
            path.display()
        )
    })
}

/// Fails with the first differing line and the command that brings `committed` up to date.
fn assert_fresh(name: &str, committed: &str, generated: &str, regenerate: &str) {
    if committed == generated {
        return;
    }
    let (line, was, now) = committed
        .lines()
        .zip(generated.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| (i + 1, a.to_owned(), b.to_owned()))
        .unwrap_or_else(|| {
            let n = committed.lines().count().min(generated.lines().count());
            (
                n + 1,
                committed
                    .lines()
                    .nth(n)
                    .unwrap_or("<end of file>")
                    .to_owned(),
                generated
                    .lines()
                    .nth(n)
                    .unwrap_or("<end of file>")
                    .to_owned(),
            )
        });
    panic!(
        "{name} is stale: it differs from what socv generates now, first at line {line}:\n  \
         committed: {was}\n  generated: {now}\n\
         Regenerate it with:\n  {regenerate}\nor everything with:\n  {REGENERATE_ALL}"
    );
}

#[test]
fn completions_are_fresh() {
    for (shell, file) in [
        ("bash", "socv.bash"),
        ("zsh", "_socv"),
        ("fish", "socv.fish"),
    ] {
        let regenerate = format!("cargo run -q -- completions {shell} > completions/{file}");
        let out = socv().args(["completions", shell]).assert().success();
        let generated =
            String::from_utf8(out.get_output().stdout.clone()).expect("completions are UTF-8");
        let path = workspace().join("completions").join(file);
        let committed = read_committed(&path, &regenerate);
        assert_fresh(
            &format!("completions/{file}"),
            &committed,
            &generated,
            &regenerate,
        );
    }
}

#[test]
fn man_pages_are_fresh() {
    let regenerate = "rm -f man/*.1 man/*.8 && cargo run -q -- man --dir man";
    let dir = tempfile::tempdir().expect("a temporary directory");
    socv()
        .args(["man", "--dir"])
        .arg(dir.path())
        .assert()
        .success();
    let generated = pages_in(dir.path());
    let committed = pages_in(&workspace().join("man"));

    let missing: Vec<_> = generated.difference(&committed).collect();
    let extra: Vec<_> = committed.difference(&generated).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "man/ is stale: pages missing {missing:?}, pages of commands that are gone {extra:?}.\n\
         Regenerate it with:\n  {regenerate}\nor everything with:\n  {REGENERATE_ALL}"
    );
    for page in &generated {
        let now = std::fs::read_to_string(dir.path().join(page)).expect("a generated page");
        let path = workspace().join("man").join(page);
        let was = read_committed(&path, regenerate);
        assert_fresh(&format!("man/{page}"), &was, &now, regenerate);
    }
}

#[test]
fn man_without_dir_prints_the_committed_socv_page() {
    let out = socv().arg("man").assert().success();
    let printed = String::from_utf8(out.get_output().stdout.clone()).expect("roff is UTF-8");
    let regenerate = "rm -f man/*.1 man/*.8 && cargo run -q -- man --dir man";
    let committed = read_committed(&workspace().join("man/socv.1"), regenerate);
    assert_fresh("man/socv.1", &committed, &printed, regenerate);
}

#[test]
fn man_pages_carry_no_date() {
    let out = socv().arg("man").assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).expect("roff is UTF-8");
    let th = text
        .lines()
        .find(|l| l.starts_with(".TH "))
        .expect("a .TH line");
    // `.TH socv 1 <date> "socv 0.1.0"`: with a date the committed pages would go stale daily.
    assert!(
        th.starts_with(".TH socv 1  \""),
        "socv(1) carries a date: {th}"
    );
}

/// The man page files (`*.1`, `*.8`) in `dir`.
fn pages_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".1") || name.ends_with(".8"))
        .collect()
}
