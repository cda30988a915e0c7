//! Integration tests of the radio mesh: closed forms for hop-by-hop delivery, determinism, self-healing,
//! joins, and bad input.

use gridtwin::agents::Msg;
use gridtwin::engine::{Agent, AgentId, Ctx, Event, SimTime, Simulation, Stop};
use gridtwin::mesh::{
    self, Layout, MeshAgent, MeshConfig, MeshEvent, MeshMsg, MeshReport, NodeSpec, Propagation, RadioModel, Traffic,
};

fn radio(name: &str) -> RadioModel {
    let text = std::fs::read_to_string(format!("{}/models/radio-{name}.ron", env!("CARGO_MANIFEST_DIR"))).unwrap();
    ron::from_str(&text).unwrap()
}

/// An application agent that counts what its node receives.
#[derive(Default)]
struct Sink {
    got: u64,
}
impl Agent<Msg> for Sink {
    fn handle(&mut self, e: Event<Msg>, _: &mut Ctx<'_, Msg>) {
        if let Msg::Mesh(MeshMsg::Deliver(_)) = e.msg {
            self.got += 1;
        }
    }
}

fn no_shadow(exponent: f64) -> Propagation {
    Propagation::LogDistance { exponent, shadowing_db: 0.0, ref_distance_m: 1.0, asymmetric: false }
}

/// A line root - 1 - ... - k, 400 m apart (only neighbours hear each other); only the far end reports.
fn line(k: u32, p: f64, packets: u64) -> (Simulation<Msg>, mesh::MeshHandle, u64) {
    let mut sim = Simulation::new(11);
    let sink = sim.add_agent(Box::new(Sink::default())).unwrap();
    let every_s = 4;
    let cfg = MeshConfig {
        propagation: no_shadow(3.0),
        fixed_per: Some(p),
        traffic: Traffic {
            report_every: Some(format!("{every_s}s")),
            report_bytes: 40,
            start: "2min".into(),
            command_every: None,
        },
        ..MeshConfig::default()
    };
    let nodes: Vec<NodeSpec> = (0..=k)
        .map(|i| NodeSpec {
            id: 100 + i,
            x_m: 400.0 * i as f64,
            y_m: 0.0,
            coordinator: i == 0,
            // Relays get an application agent, so they do not generate reports of their own.
            app: (i != k).then_some(sink),
            join_at: None,
        })
        .collect();
    let h = mesh::build(&mut sim, &cfg, &radio("sun-fsk-868"), &nodes, &[]).unwrap();
    assert!(h.warnings.is_empty(), "{:?}", h.warnings);
    // First report between 2 and 2 min + 4 s, then every 4 s; stop when `packets` have been generated + drain.
    let until = 120 + every_s * packets;
    sim.run(Stop::at(SimTime::from_secs(until))).unwrap();
    (sim, h, k as u64)
}

fn check_closed_form(k: u32, p: f64) {
    let (sim, h, _) = line(k, p, 100_000);
    let m: &MeshAgent = h.mesh(&sim).unwrap();
    let rep = h.report(&sim);
    let far = rep.node_rows.iter().find(|r| r.id == 100 + k).unwrap();
    assert!((100_000..100_100).contains(&far.generated), "generated {}", far.generated);
    let r = 3; // macMaxFrameRetries of the model
    let hop = 1.0 - p.powi(r + 1);
    let expect = hop.powi(k as i32);
    let pdr = far.delivered as f64 / far.generated as f64;
    assert!((pdr - expect).abs() <= 0.005, "{k}-hop delivery {pdr} vs closed form {expect}");
    // Mean transmissions per data frame on each hop: (1 - p^(R+1)) / (1 - p).
    let mean_tx = hop / (1.0 - p);
    for i in 1..=k as usize {
        let s = m.node_stats(i);
        let got = s.app_attempts as f64 / s.app_frames as f64;
        assert!((got / mean_tx - 1.0).abs() < 0.01, "hop from node {i}: {got} transmissions/frame vs {mean_tx}");
    }
    // One flow: only the occasional routing broadcast can collide with it.
    assert!(rep.collisions < 100, "{} collisions", rep.collisions);
}

#[test]
fn single_hop_delivery_and_transmissions_match_closed_form() {
    check_closed_form(1, 0.25);
}

#[test]
fn three_hop_line_delivery_is_the_product_of_hops() {
    check_closed_form(3, 0.25);
}

fn small_district(seed: u64, events: Vec<MeshEvent>, hours: u64) -> (Simulation<Msg>, mesh::MeshHandle, MeshReport) {
    let mut sim = Simulation::new(seed);
    let cfg = MeshConfig {
        layout: Some(Layout::Grid { nodes: 300, spacing_m: 150.0, jitter_m: 40.0, coordinators: 2 }),
        traffic: Traffic {
            report_every: Some("5min".into()),
            report_bytes: 40,
            start: "2min".into(),
            command_every: Some("1min".into()),
        },
        events,
        ..MeshConfig::default()
    };
    let h = mesh::build(&mut sim, &cfg, &radio("sun-fsk-868"), &[], &[]).unwrap();
    sim.run(Stop::at(SimTime::from_secs(hours * 3600))).unwrap();
    let r = h.report(&sim);
    (sim, h, r)
}

#[test]
fn district_forms_delivers_and_is_deterministic_with_collisions_and_shadowing() {
    let (s1, _, r1) = small_district(5, vec![], 1);
    let (s2, _, r2) = small_district(5, vec![], 1);
    let (s3, _, _) = small_district(6, vec![], 1);
    assert_eq!(s1.digest(), s2.digest());
    assert_eq!(serde_json::to_string(&r1).unwrap(), serde_json::to_string(&r2).unwrap());
    assert_ne!(s1.digest(), s3.digest());
    assert!(r1.collisions > 0, "collisions are modelled and happen");
    assert_eq!(r1.unjoined, 0);
    // The first hour includes formation (DIO flood, DAO burst).
    assert!(r1.pdr.unwrap() >= 0.99, "pdr {:?}", r1.pdr);
    let routed = r1.down_sent - r1.down_no_route;
    assert!(
        r1.down_delivered > 0 && r1.down_delivered as f64 >= 0.95 * routed as f64,
        "down {routed} routed, {} delivered",
        r1.down_delivered
    );
    assert!(r1.latency_ms_p50.unwrap() > 0.0 && r1.latency_ms_p99 >= r1.latency_ms_p50);
    assert!(r1.energy_j_mean > 0.0 && r1.duty_cycle_mean > 0.0 && r1.duty_cycle_mean < 0.01);
}

#[test]
fn mesh_heals_after_ten_percent_of_relays_fail_and_a_new_node_joins() {
    let events = vec![
        MeshEvent::FailRelays { fraction: 0.1, at: "1h".into() },
        MeshEvent::Join { node: 9999, x_m: 1200.0, y_m: 1300.0, at: "1h30min".into() },
    ];
    let (_, _, r) = small_district(7, events, 3);
    let f = &r.failures[0];
    assert!(f.failed >= 3 && f.affected > 0, "{f:?}");
    assert_eq!(f.unrepaired, 0, "{f:?}");
    let rec = r.repair_s.expect("delivery returns to >= 99 %");
    assert!(rec < 3600.0, "{rec}");
    let new = r.node_rows.iter().find(|n| n.id == 9999).unwrap();
    assert!(new.joined_s.is_some() && new.delivered > 0, "{new:?}");
}

/// A global repair in PANs of several coordinators: every coordinator starts a new DODAG version at once, and
/// a node between two of them may hear one DODAG's new version before the other's, leave for the other DODAG,
/// and then hear its first DODAG's old version again from a neighbour that has not heard the repair. Parent
/// choice must not go back to that old version, and must stay settled: the router asserts, in the debug builds
/// tests run in, that whenever a DIO does not run parent choice, running it would change nothing (this mesh
/// broke that assertion when a candidate's version was judged against the node's own DODAG only). Every node
/// rejoins after both repairs and reports get through.
#[test]
fn global_repairs_among_several_coordinators_keep_parent_choice_settled() {
    let mut sim = Simulation::new(7);
    let cfg = MeshConfig {
        layout: Some(Layout::Grid { nodes: 900, spacing_m: 100.0, jitter_m: 30.0, coordinators: 4 }),
        traffic: Traffic {
            report_every: Some("15min".into()),
            report_bytes: 40,
            start: "1min".into(),
            command_every: None,
        },
        events: vec![MeshEvent::GlobalRepair { at: "1h".into() }, MeshEvent::GlobalRepair { at: "2h".into() }],
        ..MeshConfig::default()
    };
    let h = mesh::build(&mut sim, &cfg, &radio("sun-fsk-868"), &[], &[]).unwrap();
    sim.run(Stop::at(SimTime::from_secs(3 * 3600))).unwrap();
    let r = h.report(&sim);
    assert_eq!(r.unjoined, 0);
    assert!(r.parent_changes > 1000, "the repairs moved parents: {}", r.parent_changes);
    assert!(r.pdr.unwrap() >= 0.99, "pdr {:?}", r.pdr);
}

#[test]
fn bad_input_is_named() {
    let r = radio("sun-fsk-868");
    let cfg = MeshConfig::default();
    // Duplicate ids.
    let mut sim = Simulation::new(1);
    let nodes = vec![NodeSpec::coordinator(1, 0.0, 0.0), NodeSpec::lmu(7, 100.0, 0.0), NodeSpec::lmu(7, 200.0, 0.0)];
    let e = mesh::build(&mut sim, &cfg, &r, &nodes, &[]).unwrap_err();
    assert!(e.contains("duplicate") && e.contains('7'), "{e}");
    // A node far outside everyone's range.
    let nodes = vec![NodeSpec::coordinator(1, 0.0, 0.0), NodeSpec::lmu(2, 300.0, 0.0), NodeSpec::lmu(3, 40_000.0, 0.0)];
    let h = mesh::build(&mut sim, &cfg, &r, &nodes, &[]).unwrap();
    assert!(
        h.warnings.iter().any(|w| w.contains("node 3 ") && w.contains("outside every other node's range")),
        "{:?}",
        h.warnings
    );
    // Impossible radio values.
    let mut bad = r.clone();
    bad.sensitivity_dbm = 10.0;
    let e = mesh::build(&mut Simulation::new(1), &cfg, &bad, &nodes, &[]).unwrap_err();
    assert!(e.contains("sensitivity_dbm"), "{e}");
    // No coordinator; unknown node in an event.
    let e = mesh::build(&mut Simulation::new(1), &cfg, &r, &[NodeSpec::lmu(1, 0.0, 0.0)], &[]).unwrap_err();
    assert!(e.contains("coordinator"), "{e}");
    let cfg2 = MeshConfig { events: vec![MeshEvent::Fail { node: 55, at: "1h".into() }], ..MeshConfig::default() };
    let e = mesh::build(&mut Simulation::new(1), &cfg2, &r, &nodes, &[]).unwrap_err();
    assert!(e.contains("55"), "{e}");
}

/// Commissioning of peer links on a 9 x 9 grid of nodes 400 m apart: every peer of node 1 out of reliable
/// range gets a relay route until its router's table (64) is full, and the rest stay direct with a warning
/// naming them; a peer link naming a node that is not in the mesh is refused.
#[test]
fn peer_links_out_of_range_get_relay_routes_within_the_routers_table() {
    let r = radio("sun-fsk-868");
    let cfg = MeshConfig { propagation: no_shadow(3.0), ..MeshConfig::default() };
    let mut nodes = vec![NodeSpec::coordinator(1000, -400.0, 0.0)];
    for y in 0..9u32 {
        for x in 0..9u32 {
            nodes.push(NodeSpec::lmu(1 + 9 * y + x, x as f64 * 400.0, y as f64 * 400.0));
        }
    }
    let far: Vec<(u32, u32)> = (12..=20).map(|k| (1, k)).collect();
    let mut sim = Simulation::new(1);
    let h = mesh::build(&mut sim, &cfg, &r, &nodes, &far).unwrap();
    assert_eq!(h.report(&sim).peer_relay_routes, far.len() as u32, "{:?}", h.warnings);
    let all: Vec<(u32, u32)> = (2..=81).map(|k| (1, k)).collect();
    let mut sim = Simulation::new(1);
    let h = mesh::build(&mut sim, &cfg, &r, &nodes, &all).unwrap();
    assert_eq!(h.report(&sim).peer_relay_routes, 64);
    assert!(h.warnings.iter().any(|w| w.contains("relay routes taken and stay direct")), "{:?}", h.warnings);
    let e = mesh::build(&mut Simulation::new(1), &cfg, &r, &nodes, &[(1, 999)]).unwrap_err();
    assert!(e.contains("999"), "{e}");
}

/// A peer link out of range on a 5 x 5 grid of nodes 400 m apart (node 1 to node 25, the far corner) gets a
/// second relay route through none of the first one's relays. With the first route's relay dead, a message
/// still arrives, once, over the second; without second routes it is lost. With both routes up, the
/// destination drops the later copy.
#[test]
fn a_peer_message_survives_a_dead_relay_over_the_second_route() {
    let run = |alternate: bool, kill_first_relay: bool| {
        let mut sim = Simulation::new(4);
        let sink = sim.add_agent(Box::new(Sink::default())).unwrap();
        let mut nodes = vec![NodeSpec::coordinator(1000, -400.0, 0.0)];
        for y in 0..5u32 {
            for x in 0..5u32 {
                let id = 1 + 5 * y + x;
                let app = (id == 25).then_some(sink);
                nodes.push(NodeSpec { app, ..NodeSpec::lmu(id, x as f64 * 400.0, y as f64 * 400.0) });
            }
        }
        let mut cfg = MeshConfig { propagation: no_shadow(3.0), ..MeshConfig::default() };
        cfg.routing.peer_alternate_routes = alternate;
        // Build once to learn the routes, then again with the first route's first relay failing at 100 s.
        let mut probe_sim = Simulation::new(4);
        let probe = mesh::build(&mut probe_sim, &cfg, &radio("sun-fsk-868"), &nodes, &[(1, 25)]).unwrap();
        let (first, second) = probe.peer_routes(&probe_sim, 1, 25).expect("a relay route");
        if kill_first_relay {
            cfg.events = vec![MeshEvent::Fail { node: first[0], at: "100s".into() }];
        }
        let h = mesh::build(&mut sim, &cfg, &radio("sun-fsk-868"), &nodes, &[(1, 25)]).unwrap();
        let m = Msg::Mesh(MeshMsg::Send(Box::new(mesh::MeshSend {
            node: 1,
            to: mesh::MeshDest::Neighbor(25),
            payload: b"open".to_vec(),
            class: mesh::TxClass::Protection,
            replaces: None,
        })));
        sim.schedule(sink, h.agent(), SimTime::from_secs(200), gridtwin::engine::class::DEFAULT, m).unwrap();
        sim.run(Stop::at(SimTime::from_secs(300))).unwrap();
        (sim.agent::<Sink>(sink).unwrap().got, h.report(&sim), first, second)
    };
    let (got, r, first, second) = run(true, false);
    let second = second.expect("a second route");
    assert!(first.len() >= 2 && second.len() >= 2, "{first:?} {second:?}");
    assert!(!second[..second.len() - 1].iter().any(|n| first.contains(n)), "{first:?} {second:?}");
    assert_eq!((got, r.peer_alternate_routes, r.peer_frames_duplicated, r.peer_duplicates_dropped), (1, 1, 1, 1));
    let (got, r, ..) = run(true, true);
    assert_eq!((got, r.peer_duplicates_dropped), (1, 0), "{r:?}");
    let (got, r, _, second) = run(false, true);
    assert_eq!((got, r.peer_alternate_routes, second), (0, 0, None), "{r:?}");
}

#[test]
fn application_seam_sends_up_down_and_to_neighbours() {
    let mut sim = Simulation::new(3);
    let a: AgentId = sim.add_agent(Box::new(Sink::default())).unwrap();
    let b: AgentId = sim.add_agent(Box::new(Sink::default())).unwrap();
    let c: AgentId = sim.add_agent(Box::new(Sink::default())).unwrap();
    let nodes = vec![
        NodeSpec { app: Some(a), ..NodeSpec::coordinator(1, 0.0, 0.0) },
        NodeSpec { app: Some(b), ..NodeSpec::lmu(2, 300.0, 0.0) },
        NodeSpec { app: Some(c), ..NodeSpec::lmu(3, 600.0, 0.0) },
    ];
    let cfg = MeshConfig { propagation: no_shadow(3.0), ..MeshConfig::default() };
    let h = mesh::build(&mut sim, &cfg, &radio("sun-fsk-868"), &nodes, &[]).unwrap();
    let send = |node, to, at_s| {
        let m = Msg::Mesh(MeshMsg::Send(Box::new(mesh::MeshSend {
            node,
            to,
            payload: b"hello".to_vec(),
            class: mesh::TxClass::Normal,
            replaces: None,
        })));
        (SimTime::from_secs(at_s), m)
    };
    for (t, m) in [
        send(3, mesh::MeshDest::Coordinator, 120),
        send(1, mesh::MeshDest::Node(3), 180),
        send(2, mesh::MeshDest::Neighbor(3), 200),
    ] {
        sim.schedule(c, h.agent(), t, gridtwin::engine::class::DEFAULT, m).unwrap();
    }
    sim.run(Stop::at(SimTime::from_secs(300))).unwrap();
    let got = |id| sim.agent::<Sink>(id).unwrap().got;
    assert_eq!((got(a), got(b), got(c)), (1, 0, 2));
}

#[test]
fn a_degraded_link_is_routed_around_and_named_when_bad() {
    // Root 100 at the origin; 101 at 212 m (a relay with its own application, so it sends nothing); 102 at 150 m
    // from both, reporting every 10 s. 102 starts one hop from the root; at 30 min its direct link loses 40 dB
    // (-120 dBm, far below sensitivity) and it must go through 101.
    let build = |events: Vec<MeshEvent>| {
        let mut sim = Simulation::new(5);
        let sink = sim.add_agent(Box::new(Sink::default())).unwrap();
        let cfg = MeshConfig {
            propagation: no_shadow(3.0),
            traffic: Traffic {
                report_every: Some("10s".into()),
                report_bytes: 40,
                start: "1min".into(),
                command_every: None,
            },
            events,
            ..MeshConfig::default()
        };
        let nodes = vec![
            NodeSpec::coordinator(100, 0.0, 0.0),
            NodeSpec { app: Some(sink), ..NodeSpec::lmu(101, 150.0, 150.0) },
            NodeSpec::lmu(102, 150.0, 0.0),
        ];
        mesh::build(&mut sim, &cfg, &radio("sun-fsk-868"), &nodes, &[]).map(|h| (sim, h))
    };
    let (mut sim, h) =
        build(vec![MeshEvent::DegradeLink { a: 102, b: 100, loss_db: 40.0, at: "30min".into() }]).unwrap();
    sim.run(Stop::at(SimTime::from_secs(1800))).unwrap();
    let before = h.report(&sim).node_rows.into_iter().find(|n| n.id == 102).unwrap();
    assert_eq!(before.hops_last, 1, "{before:?}");
    sim.run(Stop::at(SimTime::from_secs(3600))).unwrap();
    let after = h.report(&sim).node_rows.into_iter().find(|n| n.id == 102).unwrap();
    assert_eq!(after.hops_last, 2, "{after:?}");
    let (g, d) = (after.generated - before.generated, after.delivered - before.delivered);
    assert!(d as f64 >= 0.99 * g as f64, "{d} of {g} delivered after the link degraded");

    // Unknown nodes and impossible losses are named.
    let e = build(vec![MeshEvent::DegradeLink { a: 102, b: 7, loss_db: 10.0, at: "1min".into() }]).err().unwrap();
    assert!(e.contains("no node with id 7"), "{e}");
    for (a, b, loss) in [(102, 101, -3.0), (102, 101, f64::NAN), (102, 102, 10.0)] {
        let cfg = MeshConfig {
            events: vec![MeshEvent::DegradeLink { a, b, loss_db: loss, at: "1min".into() }],
            ..MeshConfig::default()
        };
        let e = cfg.validate().unwrap_err();
        assert!(e.contains("events[0]"), "{e}");
    }
}

/// A mesh larger than one PAN is split into PANs (strips of coordinators, each node in its nearest
/// coordinator's PAN): every PAN forms and delivers, every parent is in its child's PAN, and the same input gives
/// the same run. Here PANs hold at most 120 nodes (the default is 65,534, the 16-bit short addresses).
#[test]
fn a_mesh_beyond_one_pan_is_split_into_pans_that_each_deliver() {
    let run = || {
        let mut sim = Simulation::new(9);
        let cfg = MeshConfig {
            layout: Some(Layout::Grid { nodes: 300, spacing_m: 150.0, jitter_m: 40.0, coordinators: 4 }),
            traffic: Traffic {
                report_every: Some("5min".into()),
                report_bytes: 40,
                start: "2min".into(),
                command_every: Some("1min".into()),
            },
            pan_max_nodes: Some(120),
            ..MeshConfig::default()
        };
        let h = mesh::build(&mut sim, &cfg, &radio("sun-fsk-868"), &[], &[]).unwrap();
        sim.run(Stop::at(SimTime::from_secs(3600))).unwrap();
        let r = h.report(&sim);
        (sim.digest(), r)
    };
    let (d1, r) = run();
    let pans: std::collections::BTreeMap<u32, u16> = r.node_rows.iter().map(|n| (n.id, n.pan)).collect();
    let count = pans.values().collect::<std::collections::BTreeSet<_>>().len();
    assert!(count >= 3, "{count} PANs");
    for n in &r.node_rows {
        if let Some(p) = n.parent {
            assert_eq!(pans[&p], n.pan, "node {} in PAN {} has parent {p} in PAN {}", n.id, n.pan, pans[&p]);
        }
    }
    assert_eq!(r.unjoined, 0);
    assert!(r.pdr.is_some_and(|p| p >= 0.98), "pdr {:?}", r.pdr);
    assert_eq!(run().0, d1);
    // No split keeps PANs within bounds with too few coordinators: named, not a panic.
    let mut sim = Simulation::new(9);
    let cfg = MeshConfig {
        layout: Some(Layout::Grid { nodes: 300, spacing_m: 150.0, jitter_m: 40.0, coordinators: 2 }),
        pan_max_nodes: Some(100),
        ..MeshConfig::default()
    };
    let e = mesh::build(&mut sim, &cfg, &radio("sun-fsk-868"), &[], &[]).unwrap_err();
    assert!(e.contains("PANs") && e.contains("coordinators"), "{e}");
}

/// The city scaled up fourfold: its layout's ids grow into the joining LMU's. `gridtwin check` names the Join
/// event at its `node` field, with the ids taken, instead of a duplicate among 400,000 nodes at `mesh`.
#[test]
fn a_joining_id_taken_by_the_layout_is_named_at_its_event() {
    let city = std::fs::read_to_string("scenarios/city-100k.ron").unwrap();
    let big = city.replace("nodes: 100000", "nodes: 400000").replace("coordinators: 160", "coordinators: 640");
    assert_ne!(big, city, "the city's layout line changed");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("city-400k.ron");
    std::fs::write(&path, &big).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gridtwin")).arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = 1 + big[..big.find("Join(node: 200001").unwrap()].matches('\n').count();
    assert!(err.contains(&format!("city-400k.ron:{line}:")), "located at the Join: {err}");
    assert!(err.contains("mesh.events[1].node") && err.contains("200001") && err.contains("400640"), "{err}");
}
