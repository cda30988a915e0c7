//! MQTT 3.1.1 and 5.0 control packets: zero-copy views on decode, exact bytes on encode.
//!
//! [`Packet::decode`] borrows topic names, strings and payloads from the input buffer (nothing is copied) and
//! validates everything it reads: reserved flag bits, QoS 3, UTF-8 and wildcard rules, lengths, the Remaining
//! Length varint (at most 4 bytes) and a caller-given size limit. It returns `Ok(None)` while a packet is
//! still incomplete. [`Packet::encode`] writes the shortest form the specification allows: MQTT 5 property
//! sections are empty (one `0x00` byte), and MQTT 5 acknowledgements omit a success reason code. Sizes match
//! the shared reference table byte for byte (see `tests/it/gateway.rs`).
//!
//! Supported: CONNECT (username, password; a will is parsed and skipped), CONNACK, PUBLISH, PUBACK, PUBREC,
//! PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT. UNSUBSCRIBE, UNSUBACK and AUTH are
//! refused with [`MqttError::Unsupported`].

use alloc::vec::Vec;

/// Protocol version (the CONNECT protocol level: 4 or 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    V311,
    V5,
}

impl Version {
    pub fn level(self) -> u8 {
        match self {
            Version::V311 => 4,
            Version::V5 => 5,
        }
    }
}

/// Quality of service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(q: u8) -> Result<QoS, MqttError> {
        match q {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            _ => Err(MqttError::BadQoS),
        }
    }
}

/// Why bytes are not a valid packet (or a packet cannot be encoded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MqttError {
    /// The Remaining Length varint is longer than 4 bytes.
    BadRemainingLength,
    /// The packet is larger than the limit the caller set (or than 268,435,455 bytes).
    TooLarge,
    /// Reserved fixed-header flag bits are wrong for the packet type.
    BadFlags,
    /// QoS 3.
    BadQoS,
    /// A field ends past the packet's Remaining Length, or bytes are left over.
    Malformed,
    /// A string is not valid UTF-8 or contains U+0000.
    BadUtf8,
    /// A topic name is empty or contains a wildcard; or a filter is malformed.
    BadTopic,
    /// Protocol name or level is not MQTT 3.1.1 / 5.0.
    BadProtocol,
    /// A packet type this codec does not handle (UNSUBSCRIBE, UNSUBACK, AUTH) or type 0.
    Unsupported,
    /// QoS > 0 needs a packet id (non-zero); QoS 0 has none.
    BadPacketId,
}

impl core::fmt::Display for MqttError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            MqttError::BadRemainingLength => "Remaining Length longer than 4 bytes",
            MqttError::TooLarge => "packet larger than the limit",
            MqttError::BadFlags => "reserved fixed-header flags are wrong",
            MqttError::BadQoS => "QoS 3 is not a valid QoS",
            MqttError::Malformed => "a field runs past the packet or bytes are left over",
            MqttError::BadUtf8 => "string is not valid UTF-8 or contains U+0000",
            MqttError::BadTopic => "topic name or filter is invalid",
            MqttError::BadProtocol => "protocol name/level is not MQTT 3.1.1 or 5.0",
            MqttError::Unsupported => "packet type not supported",
            MqttError::BadPacketId => "packet id missing, zero, or present at QoS 0",
        })
    }
}

/// Largest Remaining Length MQTT can express.
pub const MAX_REMAINING: usize = 268_435_455;

/// CONNECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connect<'a> {
    pub version: Version,
    pub client_id: &'a str,
    pub keep_alive_s: u16,
    /// Clean Session (3.1.1) / Clean Start (5.0).
    pub clean_start: bool,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
}

/// CONNACK. `code` is the 3.1.1 return code or the 5.0 reason code (0 = accepted in both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    pub code: u8,
}

impl ConnAck {
    pub fn accepted(&self) -> bool {
        self.code == 0
    }
    /// The broker refused the credentials (3.1.1: 4 bad user name or password, 5 not authorised; 5.0: 0x86,
    /// 0x87): reconnecting with the same credentials is pointless.
    pub fn is_auth_failure(&self) -> bool {
        matches!(self.code, 4 | 5 | 0x86 | 0x87)
    }
}

/// PUBLISH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Publish<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub topic: &'a str,
    /// Present (non-zero) exactly when `qos` > 0.
    pub pid: Option<u16>,
    pub payload: &'a [u8],
}

/// SUBSCRIBE (its filters are read with [`Subscribe::filters`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subscribe<'a> {
    pub pid: u16,
    /// Raw filter list: (2-byte length, filter, options byte)*, validated on decode.
    raw: &'a [u8],
}

impl<'a> Subscribe<'a> {
    /// A SUBSCRIBE of one filter.
    pub fn one(pid: u16, filter: &'a str, qos: QoS) -> SubscribeOne<'a> {
        SubscribeOne { pid, filter, qos }
    }
    /// (filter, requested QoS) pairs.
    pub fn filters(&self) -> impl Iterator<Item = (&'a str, QoS)> + 'a {
        let mut r = Reader { b: self.raw, at: 0 };
        core::iter::from_fn(move || {
            if r.at >= r.b.len() {
                return None;
            }
            let f = r.str().ok()?;
            let o = r.u8().ok()?;
            Some((f, QoS::from_u8(o & 3).unwrap_or(QoS::AtMostOnce)))
        })
    }
}

/// The encodable form of a one-filter SUBSCRIBE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscribeOne<'a> {
    pub pid: u16,
    pub filter: &'a str,
    pub qos: QoS,
}

/// One MQTT control packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    Connect(Connect<'a>),
    ConnAck(ConnAck),
    Publish(Publish<'a>),
    /// PUBACK (packet id, reason code; 0 = success).
    PubAck(u16, u8),
    PubRec(u16, u8),
    PubRel(u16, u8),
    PubComp(u16, u8),
    /// Decoded SUBSCRIBE.
    Subscribe(Subscribe<'a>),
    /// SUBSCRIBE with one filter, to encode.
    SubscribeOne(SubscribeOne<'a>),
    /// SUBACK: packet id and the return/reason codes, one per filter.
    SubAck(u16, &'a [u8]),
    PingReq,
    PingResp,
    /// DISCONNECT (5.0 reason code; 0 in 3.1.1).
    Disconnect(u8),
}

/// Appends a Remaining Length varint.
pub fn write_varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

/// Bytes a Remaining Length varint of `n` takes.
pub fn varint_len(n: usize) -> usize {
    match n {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Reads a varint at the start of `b`: Ok(None) if incomplete, Ok(Some((value, bytes used))).
pub fn read_varint(b: &[u8]) -> Result<Option<(usize, usize)>, MqttError> {
    let mut n = 0usize;
    for i in 0..4 {
        let Some(&byte) = b.get(i) else { return Ok(None) };
        n |= ((byte & 0x7F) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((n, i + 1)));
        }
    }
    Err(MqttError::BadRemainingLength)
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MqttError> {
        let end = self.at.checked_add(n).ok_or(MqttError::Malformed)?;
        let s = self.b.get(self.at..end).ok_or(MqttError::Malformed)?;
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, MqttError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, MqttError> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn bin(&mut self) -> Result<&'a [u8], MqttError> {
        let n = self.u16()? as usize;
        self.take(n)
    }
    fn str(&mut self) -> Result<&'a str, MqttError> {
        let s = core::str::from_utf8(self.bin()?).map_err(|_| MqttError::BadUtf8)?;
        if s.contains('\0') {
            return Err(MqttError::BadUtf8);
        }
        Ok(s)
    }
    fn varint(&mut self) -> Result<usize, MqttError> {
        match read_varint(&self.b[self.at.min(self.b.len())..])? {
            Some((n, used)) => {
                self.at += used;
                Ok(n)
            }
            None => Err(MqttError::Malformed),
        }
    }
    /// Skips an MQTT 5 property section.
    fn skip_props(&mut self) -> Result<(), MqttError> {
        let n = self.varint()?;
        self.take(n).map(|_| ())
    }
    fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.at.min(self.b.len())..];
        self.at = self.b.len();
        s
    }
    fn done(&self) -> Result<(), MqttError> {
        if self.at == self.b.len() { Ok(()) } else { Err(MqttError::Malformed) }
    }
    fn left(&self) -> usize {
        self.b.len().saturating_sub(self.at)
    }
}

fn check_topic_name(t: &str) -> Result<(), MqttError> {
    if t.is_empty() || t.contains(['+', '#']) { Err(MqttError::BadTopic) } else { Ok(()) }
}

/// Checks a subscription filter: `#` only as the last level, `+` only as a whole level.
pub fn check_filter(f: &str) -> Result<(), MqttError> {
    if f.is_empty() {
        return Err(MqttError::BadTopic);
    }
    let n = f.split('/').count();
    for (i, level) in f.split('/').enumerate() {
        if level.contains('#') && (level != "#" || i + 1 != n) {
            return Err(MqttError::BadTopic);
        }
        if level.contains('+') && level != "+" {
            return Err(MqttError::BadTopic);
        }
    }
    Ok(())
}

/// Whether topic name `topic` matches subscription filter `filter`.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_bin(out: &mut Vec<u8>, s: &[u8]) -> Result<(), MqttError> {
    let n = u16::try_from(s.len()).map_err(|_| MqttError::TooLarge)?;
    put_u16(out, n);
    out.extend_from_slice(s);
    Ok(())
}

impl<'a> Packet<'a> {
    /// Decodes one packet from the start of `buf`. `Ok(None)`: more bytes are needed. `Ok(Some((p, n)))`: the
    /// packet and the bytes it used. Packets larger than `max_packet` bytes are refused with `TooLarge`.
    pub fn decode(
        buf: &'a [u8],
        version: Version,
        max_packet: usize,
    ) -> Result<Option<(Packet<'a>, usize)>, MqttError> {
        let Some(&first) = buf.first() else { return Ok(None) };
        let Some((rem, vlen)) = read_varint(&buf[1..])? else { return Ok(None) };
        let total = 1 + vlen + rem;
        if total > max_packet {
            return Err(MqttError::TooLarge);
        }
        if buf.len() < total {
            return Ok(None);
        }
        let body = &buf[1 + vlen..total];
        let p = Self::decode_body(first, body, version)?;
        Ok(Some((p, total)))
    }

    fn decode_body(first: u8, body: &'a [u8], v: Version) -> Result<Packet<'a>, MqttError> {
        let (kind, flags) = (first >> 4, first & 0x0F);
        let mut r = Reader { b: body, at: 0 };
        let fixed_flags = |want: u8| if flags == want { Ok(()) } else { Err(MqttError::BadFlags) };
        let ack = |r: &mut Reader<'a>| -> Result<(u16, u8), MqttError> {
            let pid = r.u16()?;
            let mut reason = 0;
            if v == Version::V5 && r.left() > 0 {
                reason = r.u8()?;
                if r.left() > 0 {
                    r.skip_props()?;
                }
            }
            r.done()?;
            Ok((pid, reason))
        };
        let p = match kind {
            1 => {
                fixed_flags(0)?;
                let name = r.bin()?;
                let level = r.u8()?;
                let version = match (name, level) {
                    (b"MQTT", 4) => Version::V311,
                    (b"MQTT", 5) => Version::V5,
                    _ => return Err(MqttError::BadProtocol),
                };
                let cf = r.u8()?;
                if cf & 1 != 0 {
                    return Err(MqttError::BadFlags);
                }
                let keep_alive_s = r.u16()?;
                if version == Version::V5 {
                    r.skip_props()?;
                }
                let client_id = r.str()?;
                if cf & 0x04 != 0 {
                    QoS::from_u8((cf >> 3) & 3)?;
                    if version == Version::V5 {
                        r.skip_props()?;
                    }
                    r.str()?;
                    r.bin()?;
                } else if cf & 0x38 != 0 {
                    return Err(MqttError::BadFlags);
                }
                let username = if cf & 0x80 != 0 { Some(r.str()?) } else { None };
                let password = if cf & 0x40 != 0 { Some(r.bin()?) } else { None };
                r.done()?;
                Packet::Connect(Connect {
                    version,
                    client_id,
                    keep_alive_s,
                    clean_start: cf & 0x02 != 0,
                    username,
                    password,
                })
            }
            2 => {
                fixed_flags(0)?;
                let ack_flags = r.u8()?;
                if ack_flags & 0xFE != 0 {
                    return Err(MqttError::BadFlags);
                }
                let code = r.u8()?;
                if v == Version::V5 && r.left() > 0 {
                    r.skip_props()?;
                }
                r.done()?;
                Packet::ConnAck(ConnAck { session_present: ack_flags & 1 != 0, code })
            }
            3 => {
                let qos = QoS::from_u8((flags >> 1) & 3)?;
                let topic = r.str()?;
                check_topic_name(topic)?;
                let pid = if qos == QoS::AtMostOnce {
                    None
                } else {
                    match r.u16()? {
                        0 => return Err(MqttError::BadPacketId),
                        p => Some(p),
                    }
                };
                if v == Version::V5 {
                    r.skip_props()?;
                }
                let payload = r.rest();
                Packet::Publish(Publish { dup: flags & 8 != 0, qos, retain: flags & 1 != 0, topic, pid, payload })
            }
            4 => {
                fixed_flags(0)?;
                let (p, c) = ack(&mut r)?;
                Packet::PubAck(p, c)
            }
            5 => {
                fixed_flags(0)?;
                let (p, c) = ack(&mut r)?;
                Packet::PubRec(p, c)
            }
            6 => {
                fixed_flags(2)?;
                let (p, c) = ack(&mut r)?;
                Packet::PubRel(p, c)
            }
            7 => {
                fixed_flags(0)?;
                let (p, c) = ack(&mut r)?;
                Packet::PubComp(p, c)
            }
            8 => {
                fixed_flags(2)?;
                let pid = r.u16()?;
                if pid == 0 {
                    return Err(MqttError::BadPacketId);
                }
                if v == Version::V5 {
                    r.skip_props()?;
                }
                let raw = r.rest();
                let mut f = Reader { b: raw, at: 0 };
                if raw.is_empty() {
                    return Err(MqttError::Malformed);
                }
                while f.left() > 0 {
                    check_filter(f.str()?)?;
                    let o = f.u8()?;
                    QoS::from_u8(o & 3)?;
                    if v == Version::V311 && o & 0xFC != 0 {
                        return Err(MqttError::BadFlags);
                    }
                }
                Packet::Subscribe(Subscribe { pid, raw })
            }
            9 => {
                fixed_flags(0)?;
                let pid = r.u16()?;
                if v == Version::V5 {
                    r.skip_props()?;
                }
                let codes = r.rest();
                if codes.is_empty() {
                    return Err(MqttError::Malformed);
                }
                Packet::SubAck(pid, codes)
            }
            12 | 13 => {
                fixed_flags(0)?;
                r.done()?;
                if kind == 12 { Packet::PingReq } else { Packet::PingResp }
            }
            14 => {
                fixed_flags(0)?;
                let mut reason = 0;
                if v == Version::V5 && r.left() > 0 {
                    reason = r.u8()?;
                    if r.left() > 0 {
                        r.skip_props()?;
                    }
                }
                r.done()?;
                Packet::Disconnect(reason)
            }
            _ => return Err(MqttError::Unsupported),
        };
        Ok(p)
    }

    /// Appends the packet's bytes to `out` for protocol `v`; returns the number of bytes written.
    pub fn encode(&self, v: Version, out: &mut Vec<u8>) -> Result<usize, MqttError> {
        let mut body = Vec::new();
        let v5 = v == Version::V5;
        let ack = |body: &mut Vec<u8>, pid: u16, reason: u8| {
            put_u16(body, pid);
            if v5 && reason != 0 {
                body.push(reason);
            }
        };
        let first = match *self {
            Packet::Connect(c) => {
                put_bin(&mut body, b"MQTT")?;
                body.push(c.version.level());
                let mut cf = 0u8;
                if c.clean_start {
                    cf |= 0x02;
                }
                if c.username.is_some() {
                    cf |= 0x80;
                }
                if c.password.is_some() {
                    cf |= 0x40;
                }
                body.push(cf);
                put_u16(&mut body, c.keep_alive_s);
                if c.version == Version::V5 {
                    body.push(0);
                }
                put_bin(&mut body, c.client_id.as_bytes())?;
                if let Some(u) = c.username {
                    put_bin(&mut body, u.as_bytes())?;
                }
                if let Some(p) = c.password {
                    put_bin(&mut body, p)?;
                }
                0x10
            }
            Packet::ConnAck(a) => {
                body.push(a.session_present as u8);
                body.push(a.code);
                if v5 {
                    body.push(0);
                }
                0x20
            }
            Packet::Publish(p) => {
                check_topic_name(p.topic)?;
                put_bin(&mut body, p.topic.as_bytes())?;
                match (p.qos, p.pid) {
                    (QoS::AtMostOnce, None) => {}
                    (QoS::AtLeastOnce | QoS::ExactlyOnce, Some(id)) if id != 0 => put_u16(&mut body, id),
                    _ => return Err(MqttError::BadPacketId),
                }
                if v5 {
                    body.push(0);
                }
                body.extend_from_slice(p.payload);
                0x30 | ((p.dup as u8) << 3) | ((p.qos as u8) << 1) | p.retain as u8
            }
            Packet::PubAck(id, c) => {
                ack(&mut body, id, c);
                0x40
            }
            Packet::PubRec(id, c) => {
                ack(&mut body, id, c);
                0x50
            }
            Packet::PubRel(id, c) => {
                ack(&mut body, id, c);
                0x62
            }
            Packet::PubComp(id, c) => {
                ack(&mut body, id, c);
                0x70
            }
            Packet::SubscribeOne(s) => {
                check_filter(s.filter)?;
                if s.pid == 0 {
                    return Err(MqttError::BadPacketId);
                }
                put_u16(&mut body, s.pid);
                if v5 {
                    body.push(0);
                }
                put_bin(&mut body, s.filter.as_bytes())?;
                body.push(s.qos as u8);
                0x82
            }
            Packet::Subscribe(s) => {
                put_u16(&mut body, s.pid);
                if v5 {
                    body.push(0);
                }
                body.extend_from_slice(s.raw);
                0x82
            }
            Packet::SubAck(id, codes) => {
                put_u16(&mut body, id);
                if v5 {
                    body.push(0);
                }
                body.extend_from_slice(codes);
                0x90
            }
            Packet::PingReq => 0xC0,
            Packet::PingResp => 0xD0,
            Packet::Disconnect(reason) => {
                if v5 && reason != 0 {
                    body.push(reason);
                }
                0xE0
            }
        };
        if body.len() > MAX_REMAINING {
            return Err(MqttError::TooLarge);
        }
        let start = out.len();
        out.push(first);
        write_varint(out, body.len());
        out.extend_from_slice(&body);
        Ok(out.len() - start)
    }

    /// The encoded size in bytes.
    pub fn encoded_len(&self, v: Version) -> Result<usize, MqttError> {
        let mut b = Vec::new();
        self.encode(v, &mut b)
    }
}

/// Size of a PUBLISH on the wire without encoding it: fixed header + topic + packet id + (5.0) properties + payload.
pub fn publish_len(v: Version, topic_len: usize, qos: QoS, payload_len: usize) -> usize {
    let rem = 2 + topic_len + if qos == QoS::AtMostOnce { 0 } else { 2 } + (v == Version::V5) as usize + payload_len;
    1 + varint_len(rem) + rem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_boundaries() {
        for (n, len) in [(0, 1), (127, 1), (128, 2), (16_383, 2), (16_384, 3), (2_097_151, 3), (2_097_152, 4)] {
            let mut b = Vec::new();
            write_varint(&mut b, n);
            assert_eq!(b.len(), len);
            assert_eq!(varint_len(n), len);
            assert_eq!(read_varint(&b).unwrap(), Some((n, len)));
        }
        assert_eq!(read_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]), Err(MqttError::BadRemainingLength));
        assert_eq!(read_varint(&[0x80]), Ok(None));
    }

    #[test]
    fn publish_roundtrip_and_len() {
        for v in [Version::V311, Version::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let payload = alloc::vec![7u8; 104];
                let pid = (qos != QoS::AtMostOnce).then_some(9);
                let p = Packet::Publish(Publish {
                    dup: false,
                    qos,
                    retain: false,
                    topic: "grid/gw-000001/events",
                    pid,
                    payload: &payload,
                });
                let mut b = Vec::new();
                let n = p.encode(v, &mut b).unwrap();
                assert_eq!(n, publish_len(v, 21, qos, 104));
                assert_eq!(Packet::decode(&b, v, 1 << 20).unwrap(), Some((p, n)));
                assert_eq!(Packet::decode(&b[..n - 1], v, 1 << 20).unwrap(), None);
            }
        }
    }

    #[test]
    fn filters_and_matching() {
        assert!(check_filter("grid/gw/cmd/#").is_ok());
        assert!(check_filter("grid/#/x").is_err());
        assert!(check_filter("grid/a+").is_err());
        assert!(topic_matches("grid/gw/cmd/#", "grid/gw/cmd/7"));
        assert!(topic_matches("grid/gw/cmd/#", "grid/gw/cmd"));
        assert!(topic_matches("grid/+/events", "grid/gw/events"));
        assert!(!topic_matches("grid/gw/cmd/#", "grid/gw/events"));
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 12345;
        for _ in 0..20_000 {
            let mut b = [0u8; 24];
            for byte in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *byte = x as u8;
            }
            b[1] &= 0x1F;
            let _ = Packet::decode(&b, Version::V311, 64);
            let _ = Packet::decode(&b, Version::V5, 64);
        }
    }
}
