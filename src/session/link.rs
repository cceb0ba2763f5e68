//! The TCP connection to a board's console: telnet decoding, negotiation answers, and writes
//! that never stop the reads.

use crate::telnet::{TelnetCodec, TelnetConfig, TelnetError};
use bytes::{Bytes, BytesMut};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{Decoder, Encoder};

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 64 * 1024;

/// What one step of [`Link::pump`] did.
#[derive(Debug)]
pub(crate) enum Pumped {
    /// Data from the board (never empty).
    Data(Bytes),
    /// Some queued bytes went to the socket.
    Wrote,
    /// The board closed the connection.
    Eof,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Telnet(#[from] TelnetError),
}

/// One telnet connection. Whoever pumps it also writes the queued bytes, so negotiation
/// answers go out without a second task, and a long write (a push) keeps reading: a writer
/// that stops reading can deadlock against a board that echoes (telnet.md §4.4).
#[derive(Debug)]
pub(crate) struct Link {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    codec: TelnetCodec,
    /// Raw bytes read and not yet decoded; the codec consumes all of it on every decode.
    rbuf: BytesMut,
    /// Encoded bytes waiting for the socket.
    wbuf: BytesMut,
    eof: bool,
}

impl Link {
    /// Connects within `timeout`. `Err(None)` means the timeout passed.
    pub(crate) async fn connect(
        host: &str,
        port: u16,
        timeout: Duration,
        telnet: TelnetConfig,
    ) -> Result<Link, Option<io::Error>> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(Some(e)),
            Err(_) => return Err(None),
        };
        // Commands are small writes that wait for an answer: Nagle would hold them back.
        stream.set_nodelay(true).map_err(Some)?;
        let sock = socket2::SockRef::from(&stream);
        // A board that loses power sends no FIN; keepalive turns that silence into an error
        // within about half a minute instead of a session that waits forever.
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(15))
            .with_interval(Duration::from_secs(5));
        #[cfg(any(target_os = "linux", target_os = "macos"))]
        let keepalive = keepalive.with_retries(3);
        sock.set_tcp_keepalive(&keepalive).map_err(Some)?;
        let (reader, writer) = stream.into_split();
        let link = Link {
            reader,
            writer,
            codec: TelnetCodec::new(telnet),
            rbuf: BytesMut::with_capacity(READ_SIZE),
            wbuf: BytesMut::new(),
            eof: false,
        };
        link.quickack();
        Ok(link)
    }

    /// busybox telnetd does not set TCP_NODELAY, so its small answers wait for our delayed
    /// ACK (~40 ms per round trip). Linux clears QUICKACK after use, hence re-arming it around
    /// every read (telnet.md §0.5: 44 ms → 2.8 ms per command).
    fn quickack(&self) {
        #[cfg(target_os = "linux")]
        {
            // Best effort: a failure only costs speed.
            let _ = socket2::SockRef::from(self.reader.as_ref()).set_tcp_quickack(true);
        }
    }

    /// Queues data for the board (IAC-escaped by the codec).
    pub(crate) fn queue(&mut self, data: &[u8]) -> Result<(), LinkError> {
        self.codec.encode(data, &mut self.wbuf)?;
        Ok(())
    }

    /// Bytes queued and not yet handed to the socket.
    pub(crate) fn queued(&self) -> usize {
        self.wbuf.len()
    }

    /// Reads or writes one step: returns decoded data as soon as there is some, or `Wrote`
    /// after handing queued bytes to the socket. Cancel-safe: a read or write either happened
    /// (and is accounted for) or did not.
    pub(crate) async fn pump(&mut self) -> Result<Pumped, LinkError> {
        loop {
            let decoded = self.codec.decode(&mut self.rbuf);
            let replies = self.codec.take_replies();
            if !replies.is_empty() {
                self.wbuf.extend_from_slice(&replies);
            }
            if let Some(data) = decoded? {
                return Ok(Pumped::Data(data));
            }
            if self.eof {
                return Ok(Pumped::Eof);
            }
            self.rbuf.reserve(READ_SIZE);
            self.quickack();
            tokio::select! {
                read = self.reader.read_buf(&mut self.rbuf) => {
                    if read? == 0 {
                        self.eof = true;
                    }
                    self.quickack();
                }
                wrote = self.writer.write(&self.wbuf), if !self.wbuf.is_empty() => {
                    let n = wrote?;
                    if n == 0 {
                        return Err(io::Error::from(io::ErrorKind::WriteZero).into());
                    }
                    let _ = self.wbuf.split_to(n);
                    return Ok(Pumped::Wrote);
                }
            }
        }
    }

    /// Writes what is left in the queue and closes our sending side.
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        let wbuf = self.wbuf.split();
        self.writer.write_all(&wbuf).await?;
        self.writer.shutdown().await
    }
}
