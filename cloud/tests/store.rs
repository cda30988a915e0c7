//! The same store tests against both backends: SQLite always, PostgreSQL when GRIDTWIN_TEST_PG names a
//! reachable database (postgres://...; `.ci/run` starts one), with a skip notice otherwise.

use gridtwin_cloud::store::{self, Reading, Store, Totals};

fn reading(gw: &str, lmu: u32, seq: u32) -> Reading {
    Reading {
        gateway: gw.into(),
        lmu,
        seq,
        generated_ms: 900_000 * seq as u64 + 37 * lmu as u64,
        received_ms: 1_700_000_000_000 + seq as u64,
        v_cv: [23_000 + lmu as u16, 22_950, 65_535],
        i_ma: [1_000 * lmu, 4_294_967_295, 0],
        p_w: -2_000_000_000 + lmu as i32,
        q_var: i32::MAX,
        flags: 0x1F,
    }
}

fn suite(s: &mut dyn Store) {
    let batch: Vec<Reading> = ["gw-a", "gw-b"]
        .iter()
        .flat_map(|g| (1..=5).flat_map(move |l| (0..6).map(move |q| reading(g, l, q))))
        .collect();
    assert_eq!(s.insert(&batch).unwrap(), 60);
    // A redelivered batch and an overlapping one store nothing twice.
    assert_eq!(s.insert(&batch[10..30]).unwrap(), 0);
    let extra = reading("gw-a", 1, 6);
    assert_eq!(s.insert(&[batch[0].clone(), extra.clone()]).unwrap(), 1);
    let mut want = Totals::default();
    batch.iter().chain([&extra]).for_each(|r| want.add(r));
    assert_eq!(s.totals().unwrap(), want, "{}", s.kind());
    let latest = s.latest().unwrap();
    assert_eq!(latest.len(), 10);
    assert_eq!(latest[0], extra, "values round-trip at their extremes");
    let series = s.series(Some(3), 900_000 * 4, 100).unwrap();
    assert_eq!(series.len(), 4, "seq 4 and 5 of LMU 3 on both gateways");
    assert!(series.windows(2).all(|w| w[0].generated_ms <= w[1].generated_ms));
    assert_eq!(s.series(None, 0, 7).unwrap().len(), 7);
}

#[test]
fn sqlite_backend() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store::open(&format!("sqlite:{}", dir.path().join("t.db").display())).unwrap();
    suite(s.as_mut());
    drop(s);
    // Reopening the file keeps everything (a restarted service).
    let mut s = store::open(&format!("sqlite:{}", dir.path().join("t.db").display())).unwrap();
    assert_eq!(s.totals().unwrap().count, 61);
}

#[test]
fn postgres_backend() {
    let Ok(url) = std::env::var("GRIDTWIN_TEST_PG") else {
        eprintln!("NOTICE: GRIDTWIN_TEST_PG not set: skipping the PostgreSQL store test");
        return;
    };
    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("GRIDTWIN_TEST_PG is reachable");
    // The end-to-end test in tests/it/cloud.rs uses the same database: work in a schema of our own.
    c.batch_execute("DROP SCHEMA IF EXISTS store_test CASCADE; CREATE SCHEMA store_test").unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}options=-c%20search_path%3Dstore_test");
    let mut s = store::open(&url).unwrap();
    suite(s.as_mut());
}
