//! `socv completions <shell>`: the shell completion script, generated from the clap definition.

use crate::cli::Cli;
use crate::error::Result;
use crate::output;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

#[derive(Debug, Args)]
#[command(after_help = "\
Needs no daemon. install.sh installs the bash, zsh and fish scripts system-wide; by hand:

Examples:
  socv completions bash > ~/.local/share/bash-completion/completions/socv
  socv completions zsh > ~/.zfunc/_socv          # with fpath+=(~/.zfunc) before compinit
  socv completions fish > ~/.config/fish/completions/socv.fish

Exit codes:
  0  success
  1  other failure")]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

pub fn run(args: CompletionsArgs) -> Result<()> {
    output::print(&script(args.shell))
}

/// The completion script of `socv` for `shell`, exactly as committed under `completions/`.
pub fn script(shell: Shell) -> String {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "socv", &mut buf);
    // clap_complete writes the UTF-8 of our own help texts; lossy never replaces anything.
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_that_names_socv() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::PowerShell,
        ] {
            let s = script(shell);
            assert!(s.contains("socv"), "{shell}: {s}");
            assert!(s.contains("lease"), "{shell} completes no subcommand");
        }
    }
}
