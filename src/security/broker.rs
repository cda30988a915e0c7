//! A compromised MQTT broker: it sits on the command path between the operator (the cloud) and the gateway,
//! injects commands of its own, alters the operator's commands in transit and replays them later.
//!
//! It has the broker's powers and nothing more: it can publish anything on the gateway's command topics, but it
//! does not hold the operator's signing key. Its injections cycle through the forms an attacker would try: a
//! plain `open` (accepted by an LMU with no operator key), and an `open` signed under a key of its own with a
//! counter far ahead and a distant expiry. Every other operator command it carries while active is altered to
//! `open` (the signature words are kept, so a signed command keeps a signature that no longer matches), the
//! rest pass intact; all are captured;
//! each replay tick publishes the oldest captured command again, unchanged. Targets are taken round robin.
//! Units: ns.

use crate::engine::{SimDuration, SimTime};
use gridtwin_firmware::gateway::command::{Action, Command};
use gridtwin_firmware::gateway::signed::{SignedCommand, SigningKey};
use std::collections::VecDeque;

/// Most operator commands the broker keeps for replay.
pub const CAPTURE_MAX: usize = 64;
/// Command ids the broker's own injections carry start here (ground truth never needs them: an accepted command
/// counts as the attacker's when the operator never issued it).
pub const INJECTED_ID_BASE: u32 = 0xA000_0000;

/// What the compromised broker does and has done.
#[derive(Clone, Debug)]
pub struct BrokerAttack {
    pub start: SimTime,
    pub stop: SimTime,
    pub inject_every: Option<SimDuration>,
    pub replay_every: Option<SimDuration>,
    pub alter: bool,
    targets: Vec<u32>,
    next_target: usize,
    own_key: SigningKey,
    captured: VecDeque<(u32, Vec<u8>)>,
    passed: u64,
    pub injected: u64,
    pub altered: u64,
    pub replayed: u64,
}

impl BrokerAttack {
    /// `targets`: the LMU ids it aims at (non-empty); `own_key_seed`: its own signing key (not the operator's).
    pub fn new(
        start: SimTime,
        stop: SimTime,
        inject_every: Option<SimDuration>,
        replay_every: Option<SimDuration>,
        alter: bool,
        targets: Vec<u32>,
        own_key_seed: [u8; 32],
    ) -> Self {
        BrokerAttack {
            start,
            stop,
            inject_every,
            replay_every,
            alter,
            targets,
            next_target: 0,
            own_key: SigningKey::from_bytes(&own_key_seed),
            captured: VecDeque::new(),
            passed: 0,
            injected: 0,
            altered: 0,
            replayed: 0,
        }
    }

    /// Whether the attack runs at `t`.
    pub fn active(&self, t: SimTime) -> bool {
        t >= self.start && t < self.stop
    }

    /// The next injected command: (LMU id, payload).
    pub fn inject(&mut self, now: SimTime) -> Option<(u32, Vec<u8>)> {
        let lmu = *self.targets.get(self.next_target % self.targets.len().max(1))?;
        self.next_target = self.next_target.wrapping_add(1);
        let k = self.injected;
        self.injected += 1;
        let c = Command { lmu_id: lmu, action: Action::Open, id: INJECTED_ID_BASE.wrapping_add(k as u32) };
        let payload = if k.is_multiple_of(2) {
            c.to_text()
        } else {
            let expires_ns = now.as_nanos().saturating_add(3_600_000_000_000);
            SignedCommand::sign(&self.own_key, c, u32::MAX - k as u32, expires_ns).to_text()
        };
        Some((lmu, payload.into_bytes()))
    }

    /// An operator command passing through at `now` on its way to LMU `lmu`: altered to `open` when the
    /// attack runs and alters (signature words kept), and captured for replay.
    pub fn pass(&mut self, now: SimTime, lmu: u32, payload: Vec<u8>) -> Vec<u8> {
        if !self.active(now) {
            return payload;
        }
        if self.replay_every.is_some() {
            if self.captured.len() >= CAPTURE_MAX {
                self.captured.pop_front();
            }
            self.captured.push_back((lmu, payload.clone()));
        }
        // Every other command passes intact (and may be replayed after it was obeyed).
        self.passed += 1;
        if !self.alter || self.passed.is_multiple_of(2) {
            return payload;
        }
        let text = String::from_utf8_lossy(&payload).into_owned();
        let mut words: Vec<&str> = text.split_ascii_whitespace().collect();
        if words.first().is_none_or(|w| w.eq_ignore_ascii_case("open")) {
            return payload;
        }
        // `report_every LMU SECONDS`: the seconds go with the verb.
        if words[0].eq_ignore_ascii_case("report_every") && words.len() > 2 {
            words.remove(2);
        }
        words[0] = "open";
        self.altered += 1;
        words.join(" ").into_bytes()
    }

    /// The next replayed command: the oldest captured, unchanged.
    pub fn replay(&mut self) -> Option<(u32, Vec<u8>)> {
        let r = self.captured.pop_front()?;
        self.replayed += 1;
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alters_keeping_the_signature_words_and_replays_unchanged() {
        let op = SigningKey::from_bytes(&[3; 32]);
        let mut b = BrokerAttack::new(
            SimTime::ZERO,
            SimTime::from_secs(100),
            Some(SimDuration::from_secs(1)),
            Some(SimDuration::from_secs(1)),
            true,
            vec![4, 5],
            [9; 32],
        );
        let c = Command { lmu_id: 4, action: Action::ReportEvery(60), id: 2 };
        let genuine = SignedCommand::sign(&op, c, 1, 10).to_text().into_bytes();
        let out = b.pass(SimTime::from_secs(1), 4, genuine.clone());
        let s = SignedCommand::parse(&out).unwrap();
        assert_eq!(s.command, Command { action: Action::Open, ..c });
        assert!(!s.verify(&op.verifying_key()));
        assert_eq!(b.replay(), Some((4, genuine)));
        let (l1, p1) = b.inject(SimTime::ZERO).unwrap();
        let (l2, p2) = b.inject(SimTime::ZERO).unwrap();
        assert_eq!((l1, l2), (4, 5));
        assert_eq!(Command::parse(&p1).unwrap().action, Action::Open);
        assert!(!SignedCommand::parse(&p2).unwrap().verify(&op.verifying_key()));
        assert_eq!((b.injected, b.altered, b.replayed), (2, 1, 1));
    }
}
