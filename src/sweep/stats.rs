//! Replication statistics of a sweep: per point, the mean of every numeric KPI column over its replications
//! and the half-width of its 95 % confidence interval (Student's t, `t(0.975, n-1) x s / sqrt(n)`), beside the
//! raw rows. Written as `<sweep name>_points.csv` when a plan has more than one replication.

use crate::report::{Table, num};

/// Two-sided 95 % Student t quantiles t(0.975, df) for df = 1..=30.
const T975: [f64; 30] = [
    12.706204736,
    4.302652730,
    3.182446305,
    2.776445105,
    2.570581836,
    2.446911851,
    2.364624252,
    2.306004135,
    2.262157163,
    2.228138852,
    2.200985160,
    2.178812830,
    2.160368656,
    2.144786688,
    2.131449546,
    2.119905299,
    2.109815578,
    2.100922040,
    2.093024054,
    2.085963447,
    2.079613845,
    2.073873068,
    2.068657610,
    2.063898562,
    2.059538553,
    2.055529439,
    2.051830516,
    2.048407142,
    2.045229642,
    2.042272456,
];

/// t(0.975, df): the table up to 30, then the Cornish-Fisher expansion around the normal quantile.
pub fn t975(df: usize) -> f64 {
    match df {
        0 => f64::NAN,
        1..=30 => T975[df - 1],
        _ => {
            let z: f64 = 1.959963984540054;
            let d = df as f64;
            z + (z.powi(3) + z) / (4.0 * d) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
        }
    }
}

/// Mean and 95 % CI half-width of `xs` (half-width `None` below two values).
pub fn mean_ci95(xs: &[f64]) -> Option<(f64, Option<f64>)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return Some((mean, None));
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some((mean, Some(t975(xs.len() - 1) * (var / n).sqrt())))
}

/// The per-point table of a sweep's raw table (`point, replication, seed, <axes>..., <kpis>...`): one row per
/// point with its axis labels, the replications counted, and per KPI column that is numeric in every row
/// where it has a value: `<kpi>_mean`, `<kpi>_ci95` (half-width) and `<kpi>_n` (replications with a value).
/// Columns that are text (a section name, `true`/`false`) are left out.
pub fn per_point(raw: &Table, axes: usize) -> Table {
    let first_kpi = 3 + axes;
    let kpis: Vec<usize> = (first_kpi..raw.header.len())
        .filter(|&c| {
            let mut any = false;
            for r in &raw.rows {
                match r.get(c).map(String::as_str) {
                    None | Some("") => {}
                    Some(v) if v.parse::<f64>().is_ok_and(f64::is_finite) => any = true,
                    Some(_) => return false,
                }
            }
            any
        })
        .collect();
    let mut header: Vec<String> = vec!["point".into()];
    header.extend(raw.header[3..first_kpi].iter().cloned());
    header.push("replications".into());
    for &c in &kpis {
        let h = &raw.header[c];
        header.extend([format!("{h}_mean"), format!("{h}_ci95"), format!("{h}_n")]);
    }
    let mut out = Table { header, rows: Vec::new() };
    let mut k = 0;
    while k < raw.rows.len() {
        let point = &raw.rows[k][0];
        let end = raw.rows[k..].iter().position(|r| &r[0] != point).map_or(raw.rows.len(), |n| k + n);
        let group = &raw.rows[k..end];
        let mut row = vec![point.clone()];
        row.extend(group[0][3..first_kpi].iter().cloned());
        row.push(group.len().to_string());
        for &c in &kpis {
            let xs: Vec<f64> = group.iter().filter_map(|r| r.get(c)?.parse::<f64>().ok()).collect();
            match mean_ci95(&xs) {
                Some((m, ci)) => row.extend([num(m), ci.map_or(String::new(), num), xs.len().to_string()]),
                None => row.extend([String::new(), String::new(), "0".into()]),
            }
        }
        out.rows.push(row);
        k = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_interval_match_hand_figures() {
        // 1, 2, 3: mean 2, s = 1, half-width t(0.975, 2) / sqrt(3) = 4.302652730 / 1.732050808.
        let (m, ci) = mean_ci95(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(m, 2.0);
        assert!((ci.unwrap() - 2.484138).abs() < 1e-6);
        assert_eq!(mean_ci95(&[5.0]), Some((5.0, None)));
        assert!((t975(1000) - 1.962339).abs() < 1e-5);
        assert!(t975(31) < t975(30) && t975(31) > 1.96);
    }

    #[test]
    fn groups_rows_by_point_and_skips_text_columns() {
        let mut raw = Table::new(&["point", "replication", "seed", "baud", "pdr", "section"]);
        for (p, r, x) in [(0, 0, "0.9"), (0, 1, "1.0"), (1, 0, ""), (1, 1, "0.5")] {
            raw.push(vec![
                p.to_string(),
                r.to_string(),
                "1".into(),
                format!("{}", 9600 * (p + 1)),
                x.into(),
                "S1".into(),
            ]);
        }
        let t = per_point(&raw, 1);
        assert_eq!(t.header, ["point", "baud", "replications", "pdr_mean", "pdr_ci95", "pdr_n"]);
        assert_eq!(t.rows[0][..3], ["0", "9600", "2"]);
        assert_eq!(t.rows[0][3], "0.95");
        assert_eq!(t.rows[1][3..], ["0.5", "", "1"]);
    }
}
