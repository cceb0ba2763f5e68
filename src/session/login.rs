//! Reading a console that has just been connected: is it asking for a user name, a password,
//! did it refuse the login, or is a shell already waiting?

/// What the end of the console's output asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    LoginPrompt,
    PasswordPrompt,
    /// The board said the credentials were wrong.
    Rejected,
    ShellPrompt,
    Nothing,
}

/// What the board prints when it refuses a login (busybox and shadow `login`, PAM).
const REJECTIONS: &[&str] = &[
    "Login incorrect",
    "Login failed",
    "Authentication failure",
    "Permission denied",
];

/// The prompts of one board. Prompts are matched at the very end of the output (trailing
/// blanks aside): a prompt waits for input, so nothing follows it, while the same words in
/// passing text (`Last login: …`) are followed by more.
#[derive(Debug, Clone)]
pub(crate) struct Prompts<'a> {
    pub(crate) login: &'a str,
    pub(crate) password: &'a str,
    pub(crate) shell: &'a [String],
}

impl Prompts<'_> {
    /// Classifies `text`: the console's output since socv last answered, escapes stripped.
    /// Refusals count only once socv has sent credentials: a serial console may still show
    /// an old `Login incorrect` from someone else's session.
    pub(crate) fn classify(&self, text: &str, credentials_sent: bool) -> Seen {
        if credentials_sent && REJECTIONS.iter().any(|r| text.contains(r)) {
            return Seen::Rejected;
        }
        let end = text.trim_end_matches([' ', '\t', '\0']);
        let matches = |prompt: &str| {
            let prompt = prompt.trim_end();
            !prompt.is_empty() && end.ends_with(prompt)
        };
        if matches(self.password) {
            Seen::PasswordPrompt
        } else if matches(self.login) {
            Seen::LoginPrompt
        } else if self.shell.iter().any(|p| matches(p)) {
            Seen::ShellPrompt
        } else {
            Seen::Nothing
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts(shell: &[String]) -> Prompts<'_> {
        Prompts {
            login: "login:",
            password: "Password:",
            shell,
        }
    }

    #[test]
    fn classifies_what_boards_print() {
        let shell = vec!["#".to_owned(), "$".to_owned()];
        let p = prompts(&shell);
        let cases = [
            ("\r\r\nWelcome\r\n\rsocv-board login: ", Seen::LoginPrompt),
            ("root\r\nPassword: ", Seen::PasswordPrompt),
            ("\r\nLogin incorrect\r\nboard login: ", Seen::Rejected),
            (
                "BusyBox v1.35.0 built-in shell (ash)\r\n\r\n# ",
                Seen::ShellPrompt,
            ),
            ("root@board:~$ ", Seen::ShellPrompt),
            ("{socv}$ ", Seen::ShellPrompt),
            ("Last login: Mon Jan  1 on pts/0\r\n", Seen::Nothing),
            ("Starting kernel ...\r\n", Seen::Nothing),
            ("", Seen::Nothing),
            // U-Boot's prompt is no shell.
            ("=> ", Seen::Nothing),
        ];
        for (text, want) in cases {
            assert_eq!(p.classify(text, true), want, "{text:?}");
        }
        assert_eq!(
            p.classify("\r\nLogin incorrect\r\nboard login: ", false),
            Seen::LoginPrompt,
            "stale refusals before socv sent anything do not count"
        );
    }

    #[test]
    fn custom_prompts() {
        let shell = vec!["board>".to_owned()];
        let p = Prompts {
            login: "Username:",
            password: "Passcode:",
            shell: &shell,
        };
        assert_eq!(p.classify("Username: ", false), Seen::LoginPrompt);
        assert_eq!(p.classify("Passcode:", true), Seen::PasswordPrompt);
        assert_eq!(p.classify("board> ", true), Seen::ShellPrompt);
        assert_eq!(p.classify("# ", false), Seen::Nothing);
    }
}
