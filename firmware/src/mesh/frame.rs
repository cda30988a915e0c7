//! Network-layer frame codecs of the mesh (the payload of an 802.15.4 MAC data frame), little-endian.
//!
//! Layouts (byte offsets; addresses and ranks are `u16`):
//! - DIO `[1, root:2, version:1, rank:2]`: a DODAG information object, broadcast under Trickle.
//! - UP `[2, sub:1, origin:2, root:2, seq:2, hop_limit:1, sender_rank:2, body..]`: travels towards the root
//!   hop by hop; the low seven bits of `sub` give the kind, 0 = application data (body = payload), 1 = DAO
//!   (body = `[parent:2]`); its top bit is the rank-error flag of data-path validation (RFC 6553 'R'), set by
//!   the first node that saw the frame come from a sender not ranked above it.
//! - DOWN `[3, origin:2, dst:2, seq:2, next:1, n:1, hops:2n, payload..]`: source-routed from the root;
//!   `hops[next]` is the hop this frame is addressed to, `hops[n-1] == dst`.
//! - NBR `[4, src:2, seq:2, payload..]`: a one-hop message between neighbours (FLISR).
//! - DIS `[5]`: a DODAG information solicitation, broadcast by a node without a parent.
//! - PEER `[7, origin:2, dst:2, seq:2, next:1, n:1, hops:2n, payload..]`: a message between two nodes that are
//!   not in radio range of each other (FLISR peers), source-routed over relays chosen at commissioning; the
//!   layout of DOWN, and `hops[n-1] == dst`. (Kind 6 is taken: it is the security frame type of a DAO.)
//!
//! Decoding never panics: truncated or malformed input yields a [`FrameError`].

use alloc::vec::Vec;

/// Bit of an UP frame's `sub` byte that carries the rank-error flag.
pub const RANK_ERROR_FLAG: u8 = 0x80;

/// Most hops a source route may hold.
pub const MAX_SOURCE_ROUTE: usize = 24;

/// Why bytes are not a valid frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    Empty,
    UnknownKind(u8),
    Truncated,
    BadRoute,
}

/// What an upward frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpKind {
    Data,
    /// Destination advertisement: `origin` has `parent` as its preferred parent.
    Dao {
        parent: u16,
    },
}

/// A decoded frame borrowing its variable parts from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Dio {
        root: u16,
        version: u8,
        rank: u16,
    },
    Up {
        kind: UpKind,
        origin: u16,
        root: u16,
        seq: u16,
        hop_limit: u8,
        sender_rank: u16,
        /// A rank inconsistency was already seen on this frame's path (RFC 6553 'R' flag).
        rank_error: bool,
        payload: &'a [u8],
    },
    Down {
        origin: u16,
        dst: u16,
        seq: u16,
        next: u8,
        hops: Route<'a>,
        payload: &'a [u8],
    },
    Nbr {
        src: u16,
        seq: u16,
        payload: &'a [u8],
    },
    Dis,
    /// A relayed neighbour message: `origin` to `dst` along `hops`.
    Peer {
        origin: u16,
        dst: u16,
        seq: u16,
        next: u8,
        hops: Route<'a>,
        payload: &'a [u8],
    },
}

/// Kind byte of a PEER frame.
pub const PEER_KIND: u8 = 7;

/// A source route as stored in a DOWN frame (pairs of little-endian bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route<'a>(&'a [u8]);

impl<'a> Route<'a> {
    pub fn len(&self) -> usize {
        self.0.len() / 2
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn get(&self, i: usize) -> Option<u16> {
        let b = self.0.get(2 * i..2 * i + 2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }
}

fn rd16(b: &[u8], at: usize) -> Result<u16, FrameError> {
    let s = b.get(at..at + 2).ok_or(FrameError::Truncated)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}
fn rd8(b: &[u8], at: usize) -> Result<u8, FrameError> {
    b.get(at).copied().ok_or(FrameError::Truncated)
}

impl<'a> Frame<'a> {
    /// Decodes one frame.
    pub fn decode(b: &'a [u8]) -> Result<Frame<'a>, FrameError> {
        match *b.first().ok_or(FrameError::Empty)? {
            1 => Ok(Frame::Dio { root: rd16(b, 1)?, version: rd8(b, 3)?, rank: rd16(b, 4)? }),
            2 => {
                let sub = rd8(b, 1)?;
                let (kind, body) = match sub & !RANK_ERROR_FLAG {
                    0 => (UpKind::Data, 11),
                    1 => (UpKind::Dao { parent: rd16(b, 11)? }, 13),
                    k => return Err(FrameError::UnknownKind(k)),
                };
                Ok(Frame::Up {
                    kind,
                    origin: rd16(b, 2)?,
                    root: rd16(b, 4)?,
                    seq: rd16(b, 6)?,
                    hop_limit: rd8(b, 8)?,
                    sender_rank: rd16(b, UP_SENDER_RANK_AT)?,
                    rank_error: sub & RANK_ERROR_FLAG != 0,
                    payload: b.get(body..).ok_or(FrameError::Truncated)?,
                })
            }
            k @ (3 | PEER_KIND) => {
                let n = rd8(b, 8)? as usize;
                let next = rd8(b, 7)?;
                if n == 0 || n > MAX_SOURCE_ROUTE || next as usize >= n {
                    return Err(FrameError::BadRoute);
                }
                let hops = b.get(9..9 + 2 * n).ok_or(FrameError::Truncated)?;
                let dst = rd16(b, 3)?;
                let route = Route(hops);
                if route.get(n - 1) != Some(dst) {
                    return Err(FrameError::BadRoute);
                }
                let (origin, seq, payload) = (rd16(b, 1)?, rd16(b, 5)?, &b[9 + 2 * n..]);
                Ok(if k == 3 {
                    Frame::Down { origin, dst, seq, next, hops: route, payload }
                } else {
                    Frame::Peer { origin, dst, seq, next, hops: route, payload }
                })
            }
            4 => {
                Ok(Frame::Nbr { src: rd16(b, 1)?, seq: rd16(b, 3)?, payload: b.get(5..).ok_or(FrameError::Truncated)? })
            }
            5 => Ok(Frame::Dis),
            k => Err(FrameError::UnknownKind(k)),
        }
    }

    /// Encodes the frame, appending to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match *self {
            Frame::Dio { root, version, rank } => {
                out.push(1);
                out.extend_from_slice(&root.to_le_bytes());
                out.push(version);
                out.extend_from_slice(&rank.to_le_bytes());
            }
            Frame::Up { kind, origin, root, seq, hop_limit, sender_rank, rank_error, payload } => {
                out.push(2);
                let sub = match kind {
                    UpKind::Data => 0,
                    UpKind::Dao { .. } => 1,
                };
                out.push(if rank_error { sub | RANK_ERROR_FLAG } else { sub });
                out.extend_from_slice(&origin.to_le_bytes());
                out.extend_from_slice(&root.to_le_bytes());
                out.extend_from_slice(&seq.to_le_bytes());
                out.push(hop_limit);
                out.extend_from_slice(&sender_rank.to_le_bytes());
                if let UpKind::Dao { parent } = kind {
                    out.extend_from_slice(&parent.to_le_bytes());
                }
                out.extend_from_slice(payload);
            }
            Frame::Down { origin, dst, seq, next, hops, payload }
            | Frame::Peer { origin, dst, seq, next, hops, payload } => {
                out.push(if matches!(self, Frame::Down { .. }) { 3 } else { PEER_KIND });
                out.extend_from_slice(&origin.to_le_bytes());
                out.extend_from_slice(&dst.to_le_bytes());
                out.extend_from_slice(&seq.to_le_bytes());
                out.push(next);
                out.push(hops.len() as u8);
                out.extend_from_slice(hops.0);
                out.extend_from_slice(payload);
            }
            Frame::Nbr { src, seq, payload } => {
                out.push(4);
                out.extend_from_slice(&src.to_le_bytes());
                out.extend_from_slice(&seq.to_le_bytes());
                out.extend_from_slice(payload);
            }
            Frame::Dis => out.push(5),
        }
    }

    /// Encodes the frame into a new vector.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16);
        self.encode_into(&mut v);
        v
    }
}

/// Byte offset of an UP frame's sender rank.
const UP_SENDER_RANK_AT: usize = 9;

/// Rewrites the sender rank of an encoded UP frame in place (a frame rerouted by a node leaves with that
/// node's rank); `false` if `b` is not an UP frame.
pub fn set_up_sender_rank(b: &mut [u8], rank: u16) -> bool {
    if b.first() != Some(&2) {
        return false;
    }
    match b.get_mut(UP_SENDER_RANK_AT..UP_SENDER_RANK_AT + 2) {
        Some(r) => {
            r.copy_from_slice(&rank.to_le_bytes());
            true
        }
        None => false,
    }
}

/// Builds the route bytes of a DOWN frame from hop addresses.
pub fn route_bytes(hops: &[u16]) -> Vec<u8> {
    hops.iter().flat_map(|h| h.to_le_bytes()).collect()
}

/// Wraps route bytes (pairs) for encoding; `None` if the length is odd or the route too long or empty.
pub fn route_from_bytes(b: &[u8]) -> Option<Route<'_>> {
    (b.len().is_multiple_of(2) && !b.is_empty() && b.len() / 2 <= MAX_SOURCE_ROUTE).then_some(Route(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let rb = route_bytes(&[7, 9, 11]);
        let frames = [
            Frame::Dio { root: 3, version: 250, rank: 700 },
            Frame::Up {
                kind: UpKind::Data,
                origin: 17,
                root: 3,
                seq: 65535,
                hop_limit: 30,
                sender_rank: 900,
                rank_error: false,
                payload: &[1, 2, 3],
            },
            Frame::Up {
                kind: UpKind::Dao { parent: 5 },
                origin: 17,
                root: 3,
                seq: 1,
                hop_limit: 30,
                sender_rank: 900,
                rank_error: true,
                payload: &[],
            },
            Frame::Down {
                origin: 3,
                dst: 11,
                seq: 4,
                next: 1,
                hops: route_from_bytes(&rb).unwrap(),
                payload: &[0xAA; 5],
            },
            Frame::Nbr { src: 8, seq: 2, payload: b"trip" },
            Frame::Dis,
            Frame::Peer { origin: 5, dst: 11, seq: 9, next: 2, hops: route_from_bytes(&rb).unwrap(), payload: b"open" },
        ];
        for f in frames {
            let b = f.encode();
            assert_eq!(Frame::decode(&b), Ok(f));
            // Every strict prefix of the fixed part fails cleanly instead of panicking.
            for cut in 0..b.len() {
                let _ = Frame::decode(&b[..cut]);
            }
        }
    }

    #[test]
    fn sender_rank_is_rewritten_in_place_on_up_frames_only() {
        let up = |sender_rank| Frame::Up {
            kind: UpKind::Dao { parent: 5 },
            origin: 17,
            root: 3,
            seq: 1,
            hop_limit: 30,
            sender_rank,
            rank_error: true,
            payload: b"x",
        };
        let mut b = up(900).encode();
        assert!(set_up_sender_rank(&mut b, 1234));
        assert_eq!(b, up(1234).encode());
        let mut dio = Frame::Dio { root: 3, version: 1, rank: 700 }.encode();
        let before = dio.clone();
        assert!(!set_up_sender_rank(&mut dio, 1234));
        assert_eq!(dio, before);
        assert!(!set_up_sender_rank(&mut b[..10], 1));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(Frame::decode(&[]), Err(FrameError::Empty));
        assert_eq!(Frame::decode(&[9]), Err(FrameError::UnknownKind(9)));
        assert_eq!(Frame::decode(&[1, 0]), Err(FrameError::Truncated));
        // Route whose last hop is not the destination.
        let mut b = Frame::Down {
            origin: 1,
            dst: 2,
            seq: 0,
            next: 0,
            hops: route_from_bytes(&route_bytes(&[2])).unwrap(),
            payload: &[],
        }
        .encode();
        assert!(Frame::decode(&b).is_ok());
        b[3] = 9;
        assert_eq!(Frame::decode(&b), Err(FrameError::BadRoute));
        // A PEER frame is checked the same way, and a `next` beyond the route is refused.
        let mut p = Frame::Peer {
            origin: 1,
            dst: 2,
            seq: 0,
            next: 0,
            hops: route_from_bytes(&route_bytes(&[4, 2])).unwrap(),
            payload: b"x",
        }
        .encode();
        assert!(matches!(Frame::decode(&p), Ok(Frame::Peer { .. })));
        p[7] = 2;
        assert_eq!(Frame::decode(&p), Err(FrameError::BadRoute));
        p[7] = 1;
        p[3] = 4;
        assert_eq!(Frame::decode(&p), Err(FrameError::BadRoute));
    }
}
