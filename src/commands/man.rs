//! `socv man`: the man pages of socv (one per command) and of leased, generated from the clap
//! definitions.

use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::output;
use clap::{Args, CommandFactory};
use clap_mangen::Man;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(after_help = "\
Without --dir, prints socv(1). With --dir, writes socv.1, one page per command (socv-lease.1,
socv-board-drain.1, ...) and leased.8 into DIR, creating it; other files in DIR are left alone.
Needs no daemon. The pages carry the version but no date, so generating them is reproducible.

Examples:
  socv man | man -l -
  socv man --dir man           # what ./completions/generate.sh does for the committed pages

Exit codes:
  0  success
  1  other failure")]
pub struct ManArgs {
    /// Write every page into DIR instead of printing socv(1)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn run(args: ManArgs) -> Result<()> {
    match args.dir {
        None => output::print(&socv_page(socv_command())?.text),
        Some(dir) => {
            let pages = pages()?;
            write_pages(&dir, &pages)?;
            eprintln!("socv: wrote {} man pages to {}", pages.len(), dir.display());
            Ok(())
        }
    }
}

/// A man page: its file name (`socv-board-drain.1`) and its roff text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub file_name: String,
    pub text: String,
}

/// Every page `--dir` writes, exactly as committed under `man/`: socv(1), one page per
/// visible command at any depth (`socv-board-drain.1`), and leased(8).
pub fn pages() -> Result<Vec<Page>> {
    let mut out = Vec::new();
    let mut root = socv_command();
    // Builds the whole tree: clap names a nested command `socv-board-drain` only then.
    root.build();
    let mut stack = vec![root];
    while let Some(cmd) = stack.pop() {
        stack.extend(cmd.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
        out.push(socv_page(cmd)?);
    }
    let leased = Man::new(<leased::config::Args as CommandFactory>::command()).section("8");
    out.push(Page {
        file_name: leased.get_filename(),
        text: render(leased, "leased")?,
    });
    out.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(out)
}

/// The page of socv or one of its commands (built as part of the whole tree).
fn socv_page(cmd: clap::Command) -> Result<Page> {
    // Subcommands have no version of their own; every page says which socv it documents.
    let man = Man::new(cmd).source(format!("socv {}", env!("CARGO_PKG_VERSION")));
    Ok(Page {
        file_name: man.get_filename(),
        text: render(man, "socv")?,
    })
}

/// socv's command tree without clap's `help` commands, which need no page of their own.
fn socv_command() -> clap::Command {
    fn without_help_command(cmd: clap::Command) -> clap::Command {
        cmd.disable_help_subcommand(true)
            .mut_subcommands(without_help_command)
    }
    without_help_command(Cli::command())
}

fn render(man: Man, what: &str) -> Result<String> {
    let mut buf = Vec::new();
    man.render(&mut buf)
        .map_err(|e| Error::io(format!("rendering the man page of {what}"), e))?;
    String::from_utf8(buf).map_err(|e| {
        Error::io(
            format!("rendering the man page of {what}"),
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })
}

fn write_pages(dir: &Path, pages: &[Page]) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    for page in pages {
        let path = dir.join(&page.file_name);
        std::fs::write(&path, &page.text)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_per_command_at_every_depth_and_one_for_leased() {
        let names: Vec<String> = pages().unwrap().into_iter().map(|p| p.file_name).collect();
        for expected in [
            "socv.1",
            "socv-lease.1",
            "socv-board.1",
            "socv-board-drain.1",
            "socv-man.1",
            "leased.8",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
        assert!(
            !names.iter().any(|n| n.contains("help")),
            "a page for clap's help command: {names:?}"
        );
    }

    #[test]
    fn pages_carry_no_date() {
        for page in pages().unwrap() {
            let (name, section) = page.file_name.rsplit_once('.').unwrap();
            let th = page.text.lines().find(|l| l.starts_with(".TH")).unwrap();
            // roff drops the empty date argument: `.TH socv 1  "socv 0.1.0"`.
            let undated = format!(".TH {name} {section}  \"");
            assert!(th.starts_with(&undated), "{}: {th}", page.file_name);
        }
    }
}
