//! Operator commands: the text payload published on `grid/{gateway_id}/cmd/...`, and the binary frame the
//! gateway sends down the mesh to the named LMU. Pure functions over bytes, shared by the gateway firmware,
//! the LMU side and any sender (the cloud service, `mosquitto_pub`).
//!
//! **MQTT payload** (ASCII, at most [`MAX_TEXT`] bytes, words separated by spaces or tabs, keywords in any case):
//!
//! ```text
//! <action> <lmu_id> [<argument>] [id=<command_id>]
//! action:  open | close | auto | report_every <seconds 1..=86400>
//! ```
//!
//! e.g. `open 7`, `close 7 id=12`, `report_every 3 60`. `open`/`close` hold the LMU's contactor in that
//! position (an operator override of automatic switching); `auto` hands it back to the LMU's own logic
//! (protection, FLISR); `report_every` changes the LMU's reporting period. `id` (a u32, default 0) is echoed
//! so a sender can match command and effect.
//!
//! **Mesh frame** (17 bytes, little-endian, CRC-16/IBM-3740 over bytes 0..15):
//!
//! ```text
//! 0    1     2        6        10      11      15      17
//! | 1 | 'C' | lmu_id | cmd_id | action | arg    | crc16 |
//! ```

use alloc::string::String;
use core::fmt::Write;

/// Longest accepted text payload, bytes.
pub const MAX_TEXT: usize = 128;
/// Mesh command frame length, bytes.
pub const FRAME_LEN: usize = 17;
/// Frame version byte.
pub const FRAME_VERSION: u8 = 1;
/// Frame kind byte (`'C'`), distinct from the report frame's kind.
pub const FRAME_KIND: u8 = b'C';
/// Longest reporting period a command may set, seconds.
pub const MAX_REPORT_EVERY_S: u32 = 86_400;

const CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// What a command does at the LMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Open the contactor and hold it open.
    Open,
    /// Close the contactor and hold it closed.
    Close,
    /// Release the operator override: the LMU's protection/FLISR drives the contactor again.
    Auto,
    /// Report every this many seconds.
    ReportEvery(u32),
}

impl Action {
    /// The action's code and argument in a frame.
    pub(crate) fn code(self) -> (u8, u32) {
        match self {
            Action::Open => (1, 0),
            Action::Close => (2, 0),
            Action::Auto => (3, 0),
            Action::ReportEvery(s) => (4, s),
        }
    }

    /// The action of a frame's code and argument (`None`: unknown code or argument out of range). The
    /// encoding is canonical: an action without an argument must carry 0, so no two frames read the same.
    pub(crate) fn from_code(code: u8, arg: u32) -> Option<Action> {
        Some(match code {
            1 if arg == 0 => Action::Open,
            2 if arg == 0 => Action::Close,
            3 if arg == 0 => Action::Auto,
            4 if (1..=MAX_REPORT_EVERY_S).contains(&arg) => Action::ReportEvery(arg),
            _ => return None,
        })
    }
}

/// One command for one LMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Command {
    pub lmu_id: u32,
    pub action: Action,
    /// Sender's id for this command (0 if none given).
    pub id: u32,
}

/// Why a payload is not a command; `word` is the 1-based word position at fault (0: the whole payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandError {
    pub word: usize,
    pub kind: CommandErrorKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandErrorKind {
    Empty,
    TooLong,
    NotAscii,
    UnknownAction,
    /// The LMU id is missing or not a u32.
    BadLmuId,
    /// `report_every` needs seconds in 1..=86400.
    BadArgument,
    /// `id=` is not followed by a u32.
    BadId,
    /// Words left over.
    Trailing,
    /// Mesh frame: wrong length, version, kind, action code or CRC.
    BadFrame,
    /// Signed payload: the `ctr=`, `exp=` and `sig=` words are missing, out of order or malformed.
    BadSignatureWords,
}

impl core::fmt::Display for CommandError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let what = match self.kind {
            CommandErrorKind::Empty => "empty command",
            CommandErrorKind::TooLong => "command longer than 128 bytes",
            CommandErrorKind::NotAscii => "command is not ASCII text",
            CommandErrorKind::UnknownAction => "unknown action (expected open, close, auto or report_every)",
            CommandErrorKind::BadLmuId => "missing or invalid LMU id (expected an integer)",
            CommandErrorKind::BadArgument => "report_every needs seconds in 1..=86400",
            CommandErrorKind::BadId => "id= needs an unsigned integer",
            CommandErrorKind::Trailing => "unexpected extra word",
            CommandErrorKind::BadFrame => "not a valid command frame",
            CommandErrorKind::BadSignatureWords => {
                "signed command needs ctr=<u32> exp=<ns> sig=<128 hex digits> at its end"
            }
        };
        if self.word > 0 { write!(f, "{what} (word {})", self.word) } else { f.write_str(what) }
    }
}

fn err(word: usize, kind: CommandErrorKind) -> CommandError {
    CommandError { word, kind }
}

impl Command {
    /// Parses a text payload.
    pub fn parse(payload: &[u8]) -> Result<Command, CommandError> {
        if payload.len() > MAX_TEXT {
            return Err(err(0, CommandErrorKind::TooLong));
        }
        let text =
            core::str::from_utf8(payload).ok().filter(|t| t.is_ascii()).ok_or(err(0, CommandErrorKind::NotAscii))?;
        let mut words = text.split_ascii_whitespace().enumerate().map(|(i, w)| (i + 1, w));
        let (_, verb) = words.next().ok_or(err(0, CommandErrorKind::Empty))?;
        let lmu_id = match words.next() {
            Some((_, w)) => w.parse::<u32>().map_err(|_| err(2, CommandErrorKind::BadLmuId))?,
            None => return Err(err(2, CommandErrorKind::BadLmuId)),
        };
        let action = if verb.eq_ignore_ascii_case("open") {
            Action::Open
        } else if verb.eq_ignore_ascii_case("close") {
            Action::Close
        } else if verb.eq_ignore_ascii_case("auto") {
            Action::Auto
        } else if verb.eq_ignore_ascii_case("report_every") {
            let s = words
                .next()
                .and_then(|(_, w)| w.parse::<u32>().ok())
                .filter(|s| (1..=MAX_REPORT_EVERY_S).contains(s))
                .ok_or(err(3, CommandErrorKind::BadArgument))?;
            Action::ReportEvery(s)
        } else {
            return Err(err(1, CommandErrorKind::UnknownAction));
        };
        let mut id = 0;
        if let Some((i, w)) = words.next() {
            let v =
                w.strip_prefix("id=").or_else(|| w.strip_prefix("ID=")).ok_or(err(i, CommandErrorKind::Trailing))?;
            id = v.parse::<u32>().map_err(|_| err(i, CommandErrorKind::BadId))?;
        }
        if let Some((i, _)) = words.next() {
            return Err(err(i, CommandErrorKind::Trailing));
        }
        Ok(Command { lmu_id, action, id })
    }

    /// The text payload (what [`Command::parse`] reads back).
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = match self.action {
            Action::Open => write!(s, "open {}", self.lmu_id),
            Action::Close => write!(s, "close {}", self.lmu_id),
            Action::Auto => write!(s, "auto {}", self.lmu_id),
            Action::ReportEvery(sec) => write!(s, "report_every {} {}", self.lmu_id, sec),
        };
        if self.id != 0 {
            let _ = write!(s, " id={}", self.id);
        }
        s
    }

    /// The mesh frame.
    pub fn to_frame(&self) -> [u8; FRAME_LEN] {
        let mut b = [0u8; FRAME_LEN];
        let (code, arg) = self.action.code();
        b[0] = FRAME_VERSION;
        b[1] = FRAME_KIND;
        b[2..6].copy_from_slice(&self.lmu_id.to_le_bytes());
        b[6..10].copy_from_slice(&self.id.to_le_bytes());
        b[10] = code;
        b[11..15].copy_from_slice(&arg.to_le_bytes());
        let crc = CRC.checksum(&b[..15]);
        b[15..17].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Whether `bytes` look like a command frame (version and kind); says nothing of validity.
    pub fn is_frame(bytes: &[u8]) -> bool {
        bytes.len() >= 2 && bytes[0] == FRAME_VERSION && bytes[1] == FRAME_KIND
    }

    /// Reads a mesh frame.
    pub fn from_frame(b: &[u8]) -> Result<Command, CommandError> {
        let bad = err(0, CommandErrorKind::BadFrame);
        if b.len() != FRAME_LEN || !Self::is_frame(b) {
            return Err(bad);
        }
        if CRC.checksum(&b[..15]) != u16::from_le_bytes([b[15], b[16]]) {
            return Err(bad);
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let action = Action::from_code(b[10], u32_at(11)).ok_or(bad)?;
        Ok(Command { lmu_id: u32_at(2), id: u32_at(6), action })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_frame_roundtrip() {
        for action in [Action::Open, Action::Close, Action::Auto, Action::ReportEvery(60)] {
            for id in [0, 42] {
                let c = Command { lmu_id: 7, action, id };
                assert_eq!(Command::parse(c.to_text().as_bytes()), Ok(c));
                assert_eq!(Command::from_frame(&c.to_frame()), Ok(c));
            }
        }
        assert_eq!(Command::parse(b"  OPEN\t7  ").unwrap().action, Action::Open);
    }

    #[test]
    fn malformed_payloads_name_the_word() {
        let k = |s: &[u8]| Command::parse(s).unwrap_err();
        assert_eq!(k(b"").kind, CommandErrorKind::Empty);
        assert_eq!(k(b"explode 7"), err(1, CommandErrorKind::UnknownAction));
        assert_eq!(k(b"open seven"), err(2, CommandErrorKind::BadLmuId));
        assert_eq!(k(b"open"), err(2, CommandErrorKind::BadLmuId));
        assert_eq!(k(b"report_every 7 0"), err(3, CommandErrorKind::BadArgument));
        assert_eq!(k(b"open 7 id=x"), err(3, CommandErrorKind::BadId));
        assert_eq!(k(b"open 7 now"), err(3, CommandErrorKind::Trailing));
        assert_eq!(k(&[0xFF, 0x20]).kind, CommandErrorKind::NotAscii);
        assert_eq!(k(&[b'a'; 200]).kind, CommandErrorKind::TooLong);
        let mut f = Command { lmu_id: 1, action: Action::Open, id: 0 }.to_frame();
        f[3] ^= 1;
        assert!(Command::from_frame(&f).is_err());
    }
}
