//! The innermost cause of a network error, worded for people ("connection refused", not
//! "error sending request … os error 111"); shared by leased's PDU drivers and socv's client.

use std::error::Error;

/// The last error in the `source()` chain.
pub fn innermost<'a>(err: &'a (dyn Error + 'static)) -> &'a (dyn Error + 'static) {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current
}

/// Plain words for the I/O failure at the bottom of `err`, when it is one people know.
pub fn io_words(err: &(dyn Error + 'static)) -> Option<&'static str> {
    use std::io::ErrorKind::*;
    let io = innermost(err).downcast_ref::<std::io::Error>()?;
    Some(match io.kind() {
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset",
        ConnectionAborted => "connection aborted",
        TimedOut => "timed out",
        HostUnreachable => "host unreachable",
        NetworkUnreachable => "network unreachable",
        AddrNotAvailable => "address not available",
        UnexpectedEof => "the connection closed before an answer",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(std::io::Error);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("error sending request")
        }
    }
    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn the_root_io_error_is_worded() {
        let err = Wrapper(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(io_words(&err), Some("connection refused"));
        let other = Wrapper(std::io::Error::other("odd"));
        assert_eq!(io_words(&other), None);
        assert_eq!(innermost(&other).to_string(), "odd");
    }
}
