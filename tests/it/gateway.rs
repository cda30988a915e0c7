//! The gateway path: MQTT bytes checked against an independent codec (rumqttc's `mqttbytes`) and the shared
//! reference table, the client's QoS flows and session, the UART framing under noise and overload, reading
//! conservation over random failure schedules, and the live bridge against a real mosquitto (when installed).

use bytes::BytesMut;
use gridtwin::scenario::{Loaded, assets};
use gridtwin::twin::uart::{OverflowPolicy, UartLine, UartSettings};
use gridtwin_firmware::Instant;
use gridtwin_firmware::gateway::batch;
use gridtwin_firmware::link::{self, FrameDecoder};
use gridtwin_firmware::mqtt::{
    Client, ClientConfig, ClientEvent, ConnAck, Connect, Packet, Publish, QoS, State, SubscribeOne, Version,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use std::path::Path;

const ID: &str = "gw-000001";
const PASS: &str = "0123456789abcdef";
const TOPIC: &str = "grid/gw-000001/events";
const FILTER: &str = "grid/gw-000001/cmd/#";

fn ours(p: Packet<'_>, v: Version) -> Vec<u8> {
    let mut b = Vec::new();
    p.encode(v, &mut b).unwrap();
    b
}
fn theirs4(p: v4::Packet) -> Vec<u8> {
    let mut b = BytesMut::new();
    p.write(&mut b, 1 << 24).unwrap();
    b.to_vec()
}
fn theirs5(p: v5::Packet) -> Vec<u8> {
    let mut b = BytesMut::new();
    p.write(&mut b, None).unwrap();
    b.to_vec()
}
fn q4(q: QoS) -> rumqttc::mqttbytes::QoS {
    match q {
        QoS::AtMostOnce => rumqttc::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::mqttbytes::QoS::ExactlyOnce,
    }
}
fn q5(q: QoS) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        QoS::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

fn connect(v: Version, auth: bool) -> Packet<'static> {
    Packet::Connect(Connect {
        version: v,
        client_id: ID,
        keep_alive_s: 10,
        clean_start: true,
        username: auth.then_some(ID),
        password: auth.then_some(PASS.as_bytes()),
    })
}
fn publish(qos: QoS, payload: &[u8]) -> Packet<'_> {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: TOPIC,
        pid: (qos != QoS::AtMostOnce).then_some(1),
        payload,
    })
}
fn rpublish4(qos: QoS, payload: &[u8]) -> v4::Packet {
    let mut p = v4::Publish::new(TOPIC, q4(qos), payload.to_vec());
    p.pkid = if qos == QoS::AtMostOnce { 0 } else { 1 };
    v4::Packet::Publish(p)
}
fn rpublish5(qos: QoS, payload: &[u8]) -> v5::Packet {
    let mut p = v5::Publish::new(TOPIC, q5(qos), payload.to_vec(), None);
    p.pkid = if qos == QoS::AtMostOnce { 0 } else { 1 };
    v5::Packet::Publish(p)
}

/// Our bytes equal rumqttc's, have the reference size, and decode back to the same packet.
fn same(name: &str, v: Version, p: Packet<'_>, theirs: Vec<u8>, reference_len: usize) {
    let mine = ours(p, v);
    assert_eq!(mine, theirs, "{name} {v:?}: bytes differ from rumqttc");
    assert_eq!(mine.len(), reference_len, "{name} {v:?}: size differs from the reference table");
    let (back, n) = Packet::decode(&theirs, v, 1 << 24).unwrap().unwrap();
    assert_eq!(n, theirs.len(), "{name} {v:?}");
    assert_eq!(ours(back, v), mine, "{name} {v:?}: decoding rumqttc's bytes changed the packet");
}

#[test]
fn every_row_of_the_reference_table_matches_rumqttc_byte_for_byte() {
    let (v3, v5v) = (Version::V311, Version::V5);
    // CONNECT without / with user + password.
    let mut c4 = v4::Connect::new(ID);
    c4.keep_alive = 10;
    same("CONNECT", v3, connect(v3, false), theirs4(v4::Packet::Connect(c4.clone())), 23);
    c4.set_login(ID, PASS);
    same("CONNECT auth", v3, connect(v3, true), theirs4(v4::Packet::Connect(c4)), 52);
    let c5 = v5::Connect { keep_alive: 10, client_id: ID.into(), clean_start: true, properties: None };
    same("CONNECT", v5v, connect(v5v, false), theirs5(v5::Packet::Connect(c5.clone(), None, None)), 24);
    let login = v5::Login { username: ID.into(), password: PASS.into() };
    same("CONNECT auth", v5v, connect(v5v, true), theirs5(v5::Packet::Connect(c5, None, Some(login))), 53);
    // CONNACK: 4 in 3.1.1; mosquitto's 5.0 CONNACK carries properties (11 bytes) and must decode.
    let ca = Packet::ConnAck(ConnAck { session_present: false, code: 0 });
    same("CONNACK", v3, ca, theirs4(v4::Packet::ConnAck(v4::ConnAck::new(v4::ConnectReturnCode::Success, false))), 4);
    let ca5 = v5::ConnAck { session_present: false, code: v5::ConnectReturnCode::Success, properties: None };
    same("CONNACK", v5v, ca, theirs5(v5::Packet::ConnAck(ca5)), 5);
    let mosquitto_connack = [0x20, 9, 0, 0, 6, 0x22, 0x00, 0x0A, 0x21, 0x00, 0x14];
    assert_eq!(
        Packet::decode(&mosquitto_connack, v5v, 1 << 20).unwrap(),
        Some((ca, 11)),
        "mosquitto's 11-byte MQTT 5 CONNACK"
    );
    // PUBLISH at every QoS and the table's payload sizes.
    for (qos, sizes) in
        [(QoS::AtMostOnce, [37, 125, 1026]), (QoS::AtLeastOnce, [39, 127, 1028]), (QoS::ExactlyOnce, [39, 127, 1028])]
    {
        for (len, size) in [12usize, 100, 1000].into_iter().zip(sizes) {
            let payload = vec![0xA5u8; len];
            same("PUBLISH", v3, publish(qos, &payload), theirs4(rpublish4(qos, &payload)), size);
            same("PUBLISH", v5v, publish(qos, &payload), theirs5(rpublish5(qos, &payload)), size + 1);
        }
    }
    // A 104-byte payload: the Remaining Length varint grows.
    let p104 = vec![1u8; 104];
    assert_eq!(ours(publish(QoS::AtMostOnce, &p104), v3).len(), 129);
    assert_eq!(ours(publish(QoS::AtLeastOnce, &p104), v3).len(), 132);
    // Acknowledgements.
    same("PUBACK", v3, Packet::PubAck(1, 0), theirs4(v4::Packet::PubAck(v4::PubAck::new(1))), 4);
    same("PUBACK", v5v, Packet::PubAck(1, 0), theirs5(v5::Packet::PubAck(v5::PubAck::new(1, None))), 4);
    same("PUBREC", v3, Packet::PubRec(1, 0), theirs4(v4::Packet::PubRec(v4::PubRec::new(1))), 4);
    same("PUBREC", v5v, Packet::PubRec(1, 0), theirs5(v5::Packet::PubRec(v5::PubRec::new(1, None))), 4);
    same("PUBREL", v3, Packet::PubRel(1, 0), theirs4(v4::Packet::PubRel(v4::PubRel::new(1))), 4);
    same("PUBREL", v5v, Packet::PubRel(1, 0), theirs5(v5::Packet::PubRel(v5::PubRel::new(1, None))), 4);
    same("PUBCOMP", v3, Packet::PubComp(1, 0), theirs4(v4::Packet::PubComp(v4::PubComp::new(1))), 4);
    same("PUBCOMP", v5v, Packet::PubComp(1, 0), theirs5(v5::Packet::PubComp(v5::PubComp::new(1, None))), 4);
    // mosquitto's 5-byte MQTT 5 PUBACK (reason 0x10, no matching subscribers) decodes, and we write it alike.
    let mosquitto_puback = [0x40, 3, 0, 1, 0x10];
    assert_eq!(Packet::decode(&mosquitto_puback, v5v, 64).unwrap(), Some((Packet::PubAck(1, 0x10), 5)));
    assert_eq!(ours(Packet::PubAck(1, 0x10), v5v), mosquitto_puback);
    // SUBSCRIBE / SUBACK.
    let sub = Packet::SubscribeOne(SubscribeOne { pid: 1, filter: FILTER, qos: QoS::AtLeastOnce });
    let mut s4 = v4::Subscribe::new(FILTER, rumqttc::mqttbytes::QoS::AtLeastOnce);
    s4.pkid = 1;
    same("SUBSCRIBE", v3, sub, theirs4(v4::Packet::Subscribe(s4)), 27);
    let mut s5 = v5::Subscribe::new(v5::Filter::new(FILTER, rumqttc::v5::mqttbytes::QoS::AtLeastOnce), None);
    s5.pkid = 1;
    same("SUBSCRIBE", v5v, sub, theirs5(v5::Packet::Subscribe(s5)), 28);
    let sa4 = v4::SubAck::new(1, vec![v4::SubscribeReasonCode::Success(rumqttc::mqttbytes::QoS::AtLeastOnce)]);
    same("SUBACK", v3, Packet::SubAck(1, &[1]), theirs4(v4::Packet::SubAck(sa4)), 5);
    let sa5 = v5::SubAck {
        pkid: 1,
        return_codes: vec![v5::SubscribeReasonCode::Success(rumqttc::v5::mqttbytes::QoS::AtLeastOnce)],
        properties: None,
    };
    same("SUBACK", v5v, Packet::SubAck(1, &[1]), theirs5(v5::Packet::SubAck(sa5)), 6);
    // PINGREQ / PINGRESP / DISCONNECT.
    same("PINGREQ", v3, Packet::PingReq, theirs4(v4::Packet::PingReq), 2);
    same("PINGREQ", v5v, Packet::PingReq, theirs5(v5::Packet::PingReq(v5::PingReq)), 2);
    same("PINGRESP", v3, Packet::PingResp, theirs4(v4::Packet::PingResp), 2);
    same("PINGRESP", v5v, Packet::PingResp, theirs5(v5::Packet::PingResp(v5::PingResp)), 2);
    same("DISCONNECT", v3, Packet::Disconnect(0), theirs4(v4::Packet::Disconnect), 2);
    let d5 = v5::Disconnect::new(v5::DisconnectReasonCode::NormalDisconnection);
    same("DISCONNECT", v5v, Packet::Disconnect(0), theirs5(v5::Packet::Disconnect(d5)), 2);
    // Batching, QoS 1 in MQTT bytes (PUBLISH + PUBACK): 100 readings of 12 bytes.
    let one = ours(publish(QoS::AtLeastOnce, &[0u8; 12]), v3).len() + 4;
    let all = ours(publish(QoS::AtLeastOnce, &[0u8; 1200]), v3).len() + 4;
    assert_eq!((100 * one, all), (4_300, 1_232));
}

#[test]
fn remaining_length_boundaries_match_rumqttc() {
    // Remaining Length 127/128 and 16,383/16,384 for a QoS 1 PUBLISH, both versions.
    for v in [Version::V311, Version::V5] {
        let fixed = 2 + TOPIC.len() + 2 + (v == Version::V5) as usize;
        for (rem, total) in [(127usize, 129usize), (128, 131), (16_383, 16_386), (16_384, 16_388)] {
            let payload = vec![0x5Au8; rem - fixed];
            let theirs = match v {
                Version::V311 => theirs4(rpublish4(QoS::AtLeastOnce, &payload)),
                Version::V5 => theirs5(rpublish5(QoS::AtLeastOnce, &payload)),
            };
            same("PUBLISH boundary", v, publish(QoS::AtLeastOnce, &payload), theirs, total);
        }
    }
}

fn cfg(v: Version) -> ClientConfig {
    let mut c = ClientConfig::new(ID);
    c.version = v;
    c.username = Some(ID.into());
    c.password = Some(PASS.as_bytes().to_vec());
    c.keep_alive_s = 30;
    c
}

fn t(s: u64) -> Instant {
    Instant(s * 1_000_000_000)
}

/// Decodes everything the client wrote with rumqttc (3.1.1) and with our codec.
fn sent(c: &mut Client) -> Vec<v4::Packet> {
    let out = c.take_output();
    let mut b = BytesMut::from(&out[..]);
    let mut v = Vec::new();
    while !b.is_empty() {
        v.push(v4::Packet::read(&mut b, 1 << 20).expect("rumqttc reads what the client writes"));
    }
    v
}
fn feed(c: &mut Client, now: Instant, p: Packet<'_>) {
    c.handle_input(now, &ours(p, Version::V311)).unwrap();
}
fn connected(v: Version) -> Client {
    let mut c = Client::new(cfg(v));
    c.transport_up(t(0));
    c.take_output();
    c.handle_input(t(0), &ours(Packet::ConnAck(ConnAck { session_present: false, code: 0 }), v)).unwrap();
    assert_eq!(c.pop_event(), Some(ClientEvent::Connected { session_present: false }));
    c
}

#[test]
fn qos_flows_both_ways_and_persistent_session_retransmission() {
    // QoS 1 out: PUBLISH, PUBACK -> delivered.
    let mut c = connected(Version::V311);
    c.publish(t(1), TOPIC, b"one", QoS::AtLeastOnce, 7).unwrap();
    let p = sent(&mut c);
    let v4::Packet::Publish(p) = &p[0] else { panic!("{p:?}") };
    assert_eq!((p.topic.as_str(), &p.payload[..], p.qos), (TOPIC, &b"one"[..], rumqttc::mqttbytes::QoS::AtLeastOnce));
    feed(&mut c, t(1), Packet::PubAck(p.pkid, 0));
    assert_eq!(c.pop_event(), Some(ClientEvent::Delivered { tag: 7, reason: 0 }));
    // QoS 2 out: PUBLISH, PUBREC -> PUBREL, PUBCOMP -> delivered.
    c.publish(t(2), TOPIC, b"two", QoS::ExactlyOnce, 8).unwrap();
    let v4::Packet::Publish(p) = sent(&mut c).remove(0) else { panic!() };
    feed(&mut c, t(2), Packet::PubRec(p.pkid, 0));
    assert_eq!(sent(&mut c), vec![v4::Packet::PubRel(v4::PubRel::new(p.pkid))]);
    assert_eq!(c.pop_event(), None);
    feed(&mut c, t(2), Packet::PubComp(p.pkid, 0));
    assert_eq!(c.pop_event(), Some(ClientEvent::Delivered { tag: 8, reason: 0 }));
    // QoS 2 in: delivered once although the broker sends it twice (DUP); PUBREL -> PUBCOMP.
    let cmd = Publish {
        dup: false,
        qos: QoS::ExactlyOnce,
        retain: false,
        topic: "grid/gw-000001/cmd/7",
        pid: Some(42),
        payload: b"open 7",
    };
    feed(&mut c, t(3), Packet::Publish(cmd));
    feed(&mut c, t(3), Packet::Publish(Publish { dup: true, ..cmd }));
    assert_eq!(sent(&mut c), vec![v4::Packet::PubRec(v4::PubRec::new(42)), v4::Packet::PubRec(v4::PubRec::new(42))]);
    feed(&mut c, t(3), Packet::PubRel(42, 0));
    assert_eq!(sent(&mut c), vec![v4::Packet::PubComp(v4::PubComp::new(42))]);
    let msgs: Vec<_> = std::iter::from_fn(|| c.pop_event()).collect();
    assert_eq!(
        msgs,
        vec![ClientEvent::Message {
            topic: "grid/gw-000001/cmd/7".into(),
            payload: b"open 7".to_vec(),
            qos: QoS::ExactlyOnce
        }]
    );
    // Persistent session: unacknowledged QoS 1 and a QoS 2 awaiting PUBCOMP survive a reconnect and are
    // retransmitted (PUBLISH with DUP, then PUBREL) after CONNACK.
    c.publish(t(4), TOPIC, b"three", QoS::AtLeastOnce, 9).unwrap();
    c.publish(t(4), TOPIC, b"four", QoS::ExactlyOnce, 10).unwrap();
    let first = sent(&mut c);
    let (v4::Packet::Publish(p3), v4::Packet::Publish(p4)) = (&first[0], &first[1]) else { panic!() };
    feed(&mut c, t(4), Packet::PubRec(p4.pkid, 0));
    sent(&mut c);
    c.transport_down(t(5));
    assert!(matches!(c.state(), State::Disconnected { .. }));
    assert!(!c.wants_transport(t(5)) && c.wants_transport(t(6)));
    c.transport_up(t(6));
    let v4::Packet::Connect(k, ..) = sent(&mut c).remove(0) else { panic!() };
    assert!(!k.clean_session && k.login.as_ref().is_some_and(|l| l.username == ID && l.password == PASS));
    feed(&mut c, t(6), Packet::ConnAck(ConnAck { session_present: true, code: 0 }));
    let again = sent(&mut c);
    let v4::Packet::Publish(r3) = &again[0] else { panic!("{again:?}") };
    assert!(r3.dup && r3.pkid == p3.pkid && &r3.payload[..] == b"three");
    assert_eq!(again[1], v4::Packet::PubRel(v4::PubRel::new(p4.pkid)));
}

#[test]
fn keepalive_timeouts_refusals_and_backoff() {
    let mut c = connected(Version::V5);
    // Idle for the keepalive: PINGREQ; no PINGRESP within the response timeout: the connection is lost.
    assert_eq!(c.poll(t(1)), t(30));
    c.poll(t(30));
    assert_eq!(c.take_output(), ours(Packet::PingReq, Version::V5));
    c.handle_input(t(31), &ours(Packet::PingResp, Version::V5)).unwrap();
    c.poll(t(60));
    c.take_output();
    c.poll(t(71));
    assert!(std::iter::from_fn(|| c.pop_event()).any(|e| e == ClientEvent::Lost));
    // Backoff doubles: 1 s, then 2 s after the next failure.
    assert!(matches!(c.state(), State::Disconnected { retry_at } if retry_at == t(72)));
    c.transport_up(t(72));
    c.transport_down(t(73));
    assert!(matches!(c.state(), State::Disconnected { retry_at } if retry_at == t(75)));
    // "Server unavailable" retries; bad credentials are final.
    c.transport_up(t(75));
    c.handle_input(t(75), &ours(Packet::ConnAck(ConnAck { session_present: false, code: 0x88 }), Version::V5)).unwrap();
    assert!(matches!(c.state(), State::Disconnected { .. }));
    let mut d = Client::new(cfg(Version::V311));
    d.transport_up(t(0));
    d.handle_input(t(0), &ours(Packet::ConnAck(ConnAck { session_present: false, code: 5 }), Version::V311)).unwrap();
    assert_eq!(d.state(), State::Refused(5));
    assert!(!d.wants_transport(t(1_000_000)));
    // Garbage from the broker is a protocol error, not a panic.
    let mut e = connected(Version::V311);
    assert!(e.handle_input(t(1), &[0xF0, 0x00]).is_err());
}

fn proptest_cfg(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(proptest_cfg(256))]

    /// Valid frames embedded in arbitrary noise are all recovered, in order; nothing panics.
    #[test]
    fn uart_frames_survive_noise(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..12),
        noise in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 13),
    ) {
        let mut wire = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            wire.extend_from_slice(&noise[i]);
            link::encode(f, &mut wire);
        }
        wire.extend_from_slice(&noise[12]);
        let mut got = Vec::new();
        let mut d = FrameDecoder::new(1024);
        d.feed(&wire, |p| got.push(p.to_vec()));
        // Noise may itself contain a valid frame (1 in 65,536 CRC chances): every real frame must be there,
        // in order, as a subsequence.
        let mut it = got.iter();
        for f in &frames {
            prop_assert!(it.any(|g| g == f), "frame of {} bytes lost", f.len());
        }
    }

    #[test]
    fn uart_decoder_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let mut d = FrameDecoder::new(256);
        d.feed(&bytes, |_| {});
        prop_assert!(d.pending() <= 256);
    }

    #[test]
    fn mqtt_decoder_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        for v in [Version::V311, Version::V5] {
            let _ = Packet::decode(&bytes, v, 1 << 16);
        }
        let _ = batch::decode(&bytes);
        let _ = gridtwin_firmware::gateway::command::Command::parse(&bytes);
    }
}

#[test]
fn uart_overload_overflows_at_the_rate_the_capacity_bound_predicts() {
    // 53-byte report frames offered at 300 frames/s (15,900 bytes/s) for 100 s to a 115,200-baud line
    // (11,520 bytes/s = 217.36 frames/s) with a buffer of 20 frames.
    let frame_len = link::encoded_len(48);
    let mut line = UartLine::new(UartSettings {
        baud: 115_200,
        buffer_bytes: 20 * frame_len,
        policy: OverflowPolicy::DropNewest,
        bit_error_rate: 0.0,
        framing_error_rate: 0.0,
    });
    let mut rng = gridtwin::engine::stream(1, 0, "uart");
    let (offered_per_s, secs) = (300u64, 100u64);
    let mut busy_until = 0u64;
    let mut on_line = false;
    for k in 0..offered_per_s * secs {
        let now = k * 1_000_000_000 / offered_per_s;
        // Finish every frame whose line time ended, starting the next.
        while on_line && busy_until <= now {
            line.finish(&mut rng);
            on_line = false;
            if let Some(d) = line.start() {
                busy_until += d.as_nanos();
                on_line = true;
            }
        }
        line.offer(vec![1u8; frame_len]);
        if !on_line && let Some(d) = line.start() {
            busy_until = now + d.as_nanos();
            on_line = true;
        }
    }
    let capacity = 11_520.0 / frame_len as f64;
    let predicted = (offered_per_s as f64 - capacity) * secs as f64 - 20.0;
    let got = line.stats.frames_overflowed as f64;
    eprintln!("UART overload: {got} frames overflowed, {predicted:.1} predicted by the capacity bound");
    assert!((got - predicted).abs() <= 3.0, "overflowed {got}, predicted {predicted:.1}");
    // Below capacity nothing overflows.
    let mut calm = UartLine::new(UartSettings {
        baud: 115_200,
        buffer_bytes: 2 * frame_len,
        policy: OverflowPolicy::DropNewest,
        bit_error_rate: 0.0,
        framing_error_rate: 0.0,
    });
    for _ in 0..1000 {
        calm.offer(vec![1u8; frame_len]);
        calm.start();
        calm.finish(&mut rng);
    }
    assert_eq!(calm.stats.frames_overflowed, 0);
}

/// The default scenario with its `gateway` section replaced by `gateway` and its mesh section by `mesh`.
fn scenario(gateway: &str, mesh: &str) -> Loaded {
    let text = assets::embedded("scenarios/default.ron").expect("default scenario embedded");
    let g = text.find("    gateway: (").expect("gateway section");
    let m = text.find("    mesh: (").expect("mesh section");
    let m_end = m + text[m..].find("\n    ),\n").expect("mesh end") + 7;
    let mut s = String::new();
    s.push_str(&text[..m]);
    s.push_str(mesh);
    s.push_str(&text[m_end..g]);
    s.push_str(gateway);
    s.push_str("\n)\n");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/conservation.ron");
    Loaded::from_text(path.display().to_string(), s, path.parent().map(Path::to_path_buf)).unwrap()
}

fn run(l: &Loaded, until: &str) -> serde_json::Value {
    let until = gridtwin::engine::parse_duration(until).unwrap();
    let mut w = gridtwin::world::build(l, l.scenario.seed, Some(until)).unwrap_or_else(|e| panic!("{e}"));
    w.run(1, |_, _| {}).unwrap();
    serde_json::Value::Object(w.report().summary)
}

fn balance(s: &serde_json::Value) -> (u64, u64, serde_json::Map<String, serde_json::Value>) {
    let c = &s["cloud"];
    let dropped = c["readings_dropped"].as_object().unwrap().clone();
    (c["readings_generated"].as_u64().unwrap(), c["readings_stored"].as_u64().unwrap(), dropped)
}

proptest! {
    #![proptest_config(proptest_cfg(6))]

    /// Random failure schedules: LMU (mesh node) failures, degraded links, UART bit and framing errors,
    /// cellular and broker outages, wrong credentials. Generated = stored + dropped by reason, exactly, and
    /// every count is non-negative.
    #[test]
    fn readings_are_conserved_over_random_failure_schedules(
        fails in prop::collection::vec((1u32..13, 0u64..10_800, 60u64..3_600), 0..3),
        degrade in prop::option::of((1u32..12, 10.0f64..40.0)),
        ber_exp in prop::option::of(-6i32..-3),
        outages in prop::collection::vec((0u64..10_800, 60u64..7_200), 0..3),
        broker in prop::collection::vec((0u64..10_800, 60u64..3_600), 0..2),
        qos in 0u8..3,
        v5 in any::<bool>(),
        wrong_password in prop::bool::weighted(0.15),
        uart_buffer in prop::sample::select(vec![1usize, 2, 256]),
    ) {
        let mut events = String::new();
        for (n, at, d) in &fails {
            events.push_str(&format!("Fail(node: {n}, at: \"{at}s\"), Recover(node: {n}, at: \"{}s\"), ", at + d));
        }
        if let Some((a, db)) = degrade {
            events.push_str(&format!("DegradeLink(a: {a}, b: {}, loss_db: {db}, at: \"1h\"), ", a + 1));
        }
        let mesh = format!("    mesh: (\n        radio: \"sun-fsk-868\",\n        propagation: LogDistance(exponent: 3.0, shadowing_db: 4.0),\n        events: [{events}],\n    ),\n");
        let list = |v: &[(u64, u64)]| v.iter().map(|(a, d)| format!("(at: \"{a}s\", duration: \"{d}s\")")).collect::<Vec<_>>().join(", ");
        let ber = ber_exp.map_or(0.0, |e| 10f64.powi(e));
        let gateway = format!(
            "    gateway: (uart_baud: 115200, report_every: \"15min\", wait_all_timeout: \"30s\", uart_buffer_frames: {uart_buffer}, \
             uart_bit_error_rate: {ber:e}, uart_framing_error_rate: {fer:e}, outages: [{o}], broker_outages: [{b}], \
             mqtt: (qos: {qos}, version: {ver}), broker: Some((users: [(username: \"gw-000001\", password: \"{pw}\")])), \
             commands: [(at: \"2h\", lmu: 3, action: Open)]),",
            fer = ber / 10.0,
            o = list(&outages),
            b = list(&broker),
            ver = if v5 { "V5" } else { "V311" },
            pw = if wrong_password { "something-else" } else { "gridtwin-gateway" },
        );
        let l = scenario(&gateway, &mesh);
        let s = run(&l, "4h");
        let (generated, stored, dropped) = balance(&s);
        let mut sum = 0i64;
        for (reason, n) in &dropped {
            let n = n.as_i64().unwrap();
            prop_assert!(n >= 0, "{reason} is negative: {n}");
            sum += n;
        }
        prop_assert!(generated > 0);
        prop_assert_eq!(generated as i64, stored as i64 + sum, "dropped {:?}", dropped);
        if wrong_password {
            prop_assert_eq!(stored, 0);
            prop_assert!(dropped["broker_refusal"].as_u64().unwrap() > 0);
        }
    }
}

#[test]
fn short_outages_within_the_store_drop_nothing_and_commands_reach_the_contactor() {
    let mesh = "    mesh: (\n        radio: \"sun-fsk-868\",\n        propagation: LogDistance(exponent: 3.0, shadowing_db: 4.0),\n    ),\n";
    let gateway = "    gateway: (uart_baud: 115200, report_every: \"15min\", wait_all_timeout: \"30s\", \
                   outages: [(at: \"1h\", duration: \"50min\")], broker_outages: [(at: \"3h\", duration: \"20min\")], \
                   commands: [(at: \"2h\", lmu: 3, action: Open), (at: \"3h5min\", lmu: 5, action: Open)]),";
    let s = run(&scenario(gateway, mesh), "5h");
    let (generated, stored, dropped) = balance(&s);
    let sum: u64 = dropped.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(generated, stored + sum);
    for reason in ["uart_overflow", "uart_corruption", "backhaul_buffer_overflow", "broker_refusal"] {
        assert_eq!(dropped[reason], 0, "{reason}: {dropped:?}");
    }
    assert!(s["mqtt"]["connects"].as_u64().unwrap() >= 3, "reconnects after both outages: {}", s["mqtt"]);
    // Both commands were applied at their LMUs, the second after the broker came back.
    assert_eq!(s["cloud"]["commands_applied"], 2, "{}", s["cloud"]);
    assert!(s["cloud"]["command_latency_ms_max"].as_f64().unwrap() > 60_000.0);
}

#[test]
fn bad_commands_and_urls_are_refused_clearly() {
    // A scenario command for an LMU that does not exist is a located error.
    let mesh = "    mesh: (\n        radio: \"sun-fsk-868\",\n    ),\n";
    let gateway = "    gateway: (uart_baud: 115200, report_every: \"15min\", wait_all_timeout: \"30s\", commands: [(at: \"1h\", lmu: 999, action: Open)]),";
    let l = scenario(gateway, mesh);
    let e = gridtwin::world::build(&l, 1, None).err().expect("unknown LMU refused").to_string();
    assert!(e.contains("gateway.commands[0].lmu") && e.contains("no LMU 999"), "{e}");
    // Unknown broker URL schemes.
    for url in ["http://127.0.0.1:1883", "wss://127.0.0.1:8883", "ws://x"] {
        let e = gridtwin::bridge::parse_broker_url(url).unwrap_err();
        assert!(e.contains("unsupported scheme"), "{url}: {e}");
    }
}

/// Runs the bridge against a real mosquitto on loopback with a password file: a subscriber sees exactly the
/// messages and payload bytes the bridge reports, a command published on the command topic opens the named
/// contactor, and wrong credentials are refused. Skipped (with a notice) when mosquitto is not installed.
#[test]
fn bridge_against_mosquitto() {
    use std::process::{Command, Stdio};
    let found = |b: &str| {
        Command::new("sh").arg("-c").arg(format!("command -v {b}")).output().is_ok_and(|o| o.status.success())
    };
    if !["mosquitto", "mosquitto_passwd", "mosquitto_sub", "mosquitto_pub"].iter().all(|b| found(b)) {
        eprintln!("NOTICE: mosquitto (and mosquitto-clients) not on PATH: skipping the live bridge test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pw = d.join("pw");
    assert!(
        Command::new("mosquitto_passwd")
            .args(["-c", "-b"])
            .arg(&pw)
            .args(["gw-000001", "s3cret-pass"])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        Command::new("mosquitto_passwd").args(["-b"]).arg(&pw).args(["watcher", "w4tch"]).status().unwrap().success()
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let conf = d.join("m.conf");
    std::fs::write(&conf, format!("user root\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nmax_queued_messages 100000\n", pw.display())).unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _broker = Kill(
        Command::new("mosquitto").arg("-c").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    );
    // Wait for the listener.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let sub_log = d.join("sub.log");
    let p = port.to_string();
    let _sub = Kill(
        Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &p,
                "-u",
                "watcher",
                "-P",
                "w4tch",
                "-q",
                "1",
                "-t",
                "grid/+/events",
                "-F",
                "%t %l",
            ])
            .stdout(std::fs::File::create(&sub_log).unwrap())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    // Commands wait on the broker for the gateway's persistent session: each is published retained on a topic
    // the gateway subscribes to, so it arrives when the gateway subscribes.
    let publish_retained = |topic: &str, msg: &str| {
        let st = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &p,
                "-u",
                "watcher",
                "-P",
                "w4tch",
                "-q",
                "1",
                "-r",
                "-t",
                topic,
                "-m",
                msg,
            ])
            .status()
            .unwrap();
        assert!(st.success(), "mosquitto_pub {topic}");
    };
    publish_retained("grid/gw-000001/cmd/3", "open 3 id=77");
    // A malformed command and one for an LMU that does not exist: refused and counted by the gateway.
    for (topic, msg) in [("grid/gw-000001/cmd/bad", "explode 3"), ("grid/gw-000001/cmd/999", "open 999")] {
        publish_retained(topic, msg);
    }
    let bin = env!("CARGO_BIN_EXE_gridtwin");
    let scen = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/default.ron");
    let out = d.join("br");
    let broker = format!("mqtt://127.0.0.1:{port}");
    let ok = Command::new(bin)
        .args(["--quiet", "bridge"])
        .arg(&scen)
        .args([
            "--broker",
            &broker,
            "--username",
            "gw-000001",
            "--password",
            "s3cret-pass",
            "--speed",
            "max",
            "--until",
            "3h",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(ok.status.success(), "bridge failed: {}", String::from_utf8_lossy(&ok.stderr));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let log = std::fs::read_to_string(&sub_log).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let bytes: u64 = lines.iter().map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap()).sum();
    assert!(!lines.is_empty());
    assert_eq!(lines.len() as u64, s["mqtt"]["messages_published"].as_u64().unwrap(), "{log}");
    assert_eq!(bytes, s["mqtt"]["payload_bytes"].as_u64().unwrap());
    assert_eq!(s["mqtt"]["commands_forwarded"], 1, "{}", s["mqtt"]);
    assert_eq!(s["mqtt"]["commands_malformed"], 1, "{}", s["mqtt"]);
    assert_eq!(s["mqtt"]["commands_unknown_lmu"], 1, "{}", s["mqtt"]);
    eprintln!(
        "bridge vs mosquitto: subscriber saw {} messages / {bytes} payload bytes; summary says {} / {}",
        lines.len(),
        s["mqtt"]["messages_published"],
        s["mqtt"]["payload_bytes"]
    );
    let cmds = std::fs::read_to_string(out.join("commands.csv")).unwrap();
    let row = cmds.lines().nth(1).expect("a command row");
    let cols: Vec<&str> = row.split(',').collect();
    assert_eq!(&cols[..3], &["77", "3", "open"], "{cmds}");
    assert!(!cols[6].is_empty(), "the contactor of LMU 3 opened: {cmds}");
    // Wrong credentials: a clear error and a non-zero exit.
    let bad = Command::new(bin)
        .args(["--quiet", "bridge"])
        .arg(&scen)
        .args([
            "--broker",
            &broker,
            "--username",
            "gw-000001",
            "--password",
            "wrong",
            "--speed",
            "max",
            "--until",
            "1h",
            "--out",
        ])
        .arg(d.join("bad"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("refused the connection"), "{err}");
    // Unknown URL scheme: a clear error.
    let url = Command::new(bin)
        .args(["--quiet", "bridge"])
        .arg(&scen)
        .args(["--broker", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!url.status.success() && String::from_utf8_lossy(&url.stderr).contains("unsupported scheme"));
}
