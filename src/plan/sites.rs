//! The poles file of `gridtwin mesh plan`: candidate sites as CSV, `id,x_m,y_m` (metres in a local plane) or
//! `id,lat,lon` (WGS-84 degrees), with optional `height_m` (antenna height above ground) and `feeder_bus`.
//!
//! Lat/lon sites are projected onto a local plane (equirectangular about the set's mean latitude and
//! longitude) for the spatial index and the written scenario; link distances between lat/lon sites are
//! great-circle (haversine) distances on the mean Earth radius, so the radio graph does not depend on the
//! projection. Every error names the file and line (and column where there is one).

use crate::scenario::InputError;

/// Mean Earth radius (IUGG), m.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;
/// Most sites one file may hold.
pub const MAX_SITES: usize = 200_000;

/// One candidate site.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    pub id: String,
    /// Position in the local plane, m (projected for lat/lon input).
    pub x_m: f64,
    pub y_m: f64,
    /// WGS-84 position, degrees, when the file gave one.
    pub lat_lon_deg: Option<(f64, f64)>,
    pub height_m: Option<f64>,
    pub feeder_bus: Option<u32>,
    /// 1-based line of the file the site came from.
    pub line: usize,
}

/// How the file gave positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coords {
    Plane,
    LatLon,
}

/// A parsed poles file.
#[derive(Clone, Debug)]
pub struct Sites {
    pub sites: Vec<Site>,
    pub coords: Coords,
    /// Projection origin (lat, lon) in degrees for lat/lon input.
    pub origin_deg: Option<(f64, f64)>,
}

/// Great-circle distance between two WGS-84 points (degrees) on the mean Earth sphere, m.
pub fn haversine_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (p1, p2) = (a.0.to_radians(), b.0.to_radians());
    let (dp, dl) = (p2 - p1, (b.1 - a.1).to_radians());
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

impl Sites {
    /// Distance between sites `a` and `b`, m: haversine for lat/lon input, Euclidean otherwise.
    pub fn distance_m(&self, a: usize, b: usize) -> f64 {
        let (sa, sb) = (&self.sites[a], &self.sites[b]);
        match (sa.lat_lon_deg, sb.lat_lon_deg) {
            (Some(p), Some(q)) => haversine_m(p, q),
            _ => (sa.x_m - sb.x_m).hypot(sa.y_m - sb.y_m),
        }
    }

    /// Largest ratio of a true distance to its projected distance over the set (1 for plane input): the
    /// spatial index widens its cells by this much so no link is missed.
    pub fn projection_slack(&self) -> f64 {
        let Some((lat0, _)) = self.origin_deg else { return 1.0 };
        let far = self.sites.iter().filter_map(|s| s.lat_lon_deg).map(|(lat, _)| lat.abs()).fold(0.0f64, f64::max);
        let c0 = lat0.to_radians().cos();
        let cf = far.to_radians().cos().max(1e-6);
        (c0 / cf).max(cf / c0).max(1.0) * 1.01
    }

    /// Index of the site with id `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.sites.iter().position(|s| s.id == id)
    }
}

/// Parses a poles file's text (`file` names it in errors).
pub fn parse(file: &str, text: &str) -> Result<Sites, InputError> {
    let err_line = |line: usize, col: usize, m: String, help: Option<String>| {
        InputError::at_line_col(file, text, line, col, m, help)
    };
    let mut lines = text.split_inclusive('\n').enumerate().map(|(i, l)| (i + 1, l.trim_end_matches(['\n', '\r'])));
    // The header: the first line that is neither empty nor a comment.
    let (header_line, header) = loop {
        match lines.next() {
            None => {
                return Err(InputError::file(
                    file,
                    "empty poles file: want a header `id,x_m,y_m` or `id,lat,lon`",
                    None,
                ));
            }
            Some((_, l)) if l.trim().is_empty() || l.trim_start().starts_with('#') => continue,
            Some((n, l)) => break (n, l),
        }
    };
    let cols: Vec<String> = header.split(',').map(|c| c.trim().trim_matches('"').to_ascii_lowercase()).collect();
    let find = |name: &str| cols.iter().position(|c| c == name);
    let id_col = find("id").ok_or_else(|| {
        err_line(
            header_line,
            1,
            format!("header has no `id` column (found: {})", cols.join(", ")),
            Some("the header must be `id,x_m,y_m` or `id,lat,lon` (optional: height_m, feeder_bus)".into()),
        )
    })?;
    let (coords, c1, c2) = match (find("x_m"), find("y_m"), find("lat"), find("lon")) {
        (Some(x), Some(y), None, None) => (Coords::Plane, x, y),
        (None, None, Some(la), Some(lo)) => (Coords::LatLon, la, lo),
        (Some(_), Some(_), Some(_), Some(_)) => {
            return Err(err_line(
                header_line,
                1,
                "header has both x_m/y_m and lat/lon columns; give one pair".into(),
                None,
            ));
        }
        _ => {
            let missing: Vec<&str> = if find("x_m").is_some() || find("y_m").is_some() {
                ["x_m", "y_m"].into_iter().filter(|c| find(c).is_none()).collect()
            } else if find("lat").is_some() || find("lon").is_some() {
                ["lat", "lon"].into_iter().filter(|c| find(c).is_none()).collect()
            } else {
                vec!["x_m", "y_m (or lat, lon)"]
            };
            return Err(err_line(
                header_line,
                1,
                format!("header is missing column(s) {} (found: {})", missing.join(", "), cols.join(", ")),
                Some("the header must be `id,x_m,y_m` or `id,lat,lon` (optional: height_m, feeder_bus)".into()),
            ));
        }
    };
    let h_col = find("height_m");
    let bus_col = find("feeder_bus");
    let mut sites: Vec<Site> = Vec::new();
    let mut seen: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for (n, l) in lines {
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        if sites.len() >= MAX_SITES {
            return Err(err_line(n, 1, format!("more than {MAX_SITES} sites"), None));
        }
        let cells: Vec<&str> = l.split(',').map(|c| c.trim().trim_matches('"')).collect();
        if cells.len() != cols.len() {
            return Err(err_line(
                n,
                1,
                format!("line {n} has {} fields; the header has {}", cells.len(), cols.len()),
                None,
            ));
        }
        let col_of = |k: usize| 1 + cells[..k].iter().map(|c| c.len() + 1).sum::<usize>();
        let id = cells[id_col].to_string();
        if id.is_empty() {
            return Err(err_line(n, col_of(id_col), format!("line {n}: empty site id"), None));
        }
        if let Some(first) = seen.get(&id) {
            return Err(err_line(
                n,
                col_of(id_col),
                format!("line {n}: duplicate site id `{id}` (first on line {first})"),
                Some("every site id must be unique".into()),
            ));
        }
        seen.insert(id.clone(), n);
        let number = |k: usize, what: &str| -> Result<f64, InputError> {
            let c = cells[k];
            match c.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(err_line(
                    n,
                    col_of(k),
                    format!("line {n}, site `{id}`: {what} `{c}` is not a finite number"),
                    None,
                )),
            }
        };
        let (a, b) = (number(c1, &cols[c1])?, number(c2, &cols[c2])?);
        let height_m = h_col
            .map(|k| if cells[k].is_empty() { Ok(None) } else { number(k, "height_m").map(Some) })
            .transpose()?
            .flatten();
        if let Some(h) = height_m
            && !(0.0..=500.0).contains(&h)
        {
            return Err(err_line(
                n,
                col_of(h_col.unwrap_or(0)),
                format!("line {n}, site `{id}`: height_m {h} is outside 0..=500"),
                None,
            ));
        }
        let feeder_bus = match bus_col {
            Some(k) if !cells[k].is_empty() => Some(cells[k].parse::<u32>().map_err(|_| {
                err_line(
                    n,
                    col_of(k),
                    format!("line {n}, site `{id}`: feeder_bus `{}` is not a bus number", cells[k]),
                    None,
                )
            })?),
            _ => None,
        };
        let lat_lon_deg = match coords {
            Coords::LatLon => {
                if !(-90.0..=90.0).contains(&a) || !(-180.0..=180.0).contains(&b) {
                    return Err(err_line(
                        n,
                        col_of(c1),
                        format!("line {n}, site `{id}`: lat {a}, lon {b} is not a WGS-84 position"),
                        None,
                    ));
                }
                Some((a, b))
            }
            Coords::Plane => None,
        };
        sites.push(Site { id, x_m: a, y_m: b, lat_lon_deg, height_m, feeder_bus, line: n });
    }
    if sites.is_empty() {
        return Err(err_line(header_line, 1, "no sites after the header".into(), None));
    }
    let mut origin_deg = None;
    if coords == Coords::LatLon {
        let k = sites.len() as f64;
        let lat0 = sites.iter().map(|s| s.x_m).sum::<f64>() / k;
        let lon0 = sites.iter().map(|s| s.y_m).sum::<f64>() / k;
        if sites.iter().any(|s| (s.x_m - lat0).abs() > 5.0 || (s.y_m - lon0).abs() > 5.0) {
            return Err(InputError::file(
                file,
                "sites span more than 5 degrees from their centre; a local plan covers a district, not a country",
                None,
            ));
        }
        let c0 = lat0.to_radians().cos();
        for s in &mut sites {
            let (lat, lon) = (s.x_m, s.y_m);
            s.x_m = EARTH_RADIUS_M * (lon - lon0).to_radians() * c0;
            s.y_m = EARTH_RADIUS_M * (lat - lat0).to_radians();
        }
        origin_deg = Some((lat0, lon0));
    }
    Ok(Sites { sites, coords, origin_deg })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plane_and_lat_lon_files() {
        let s = parse("p.csv", "id,x_m,y_m,height_m\na,0,0,9\nb,3,4,\n").unwrap();
        assert_eq!(s.sites.len(), 2);
        assert_eq!(s.distance_m(0, 1), 5.0);
        assert_eq!(s.sites[0].height_m, Some(9.0));
        let s = parse("p.csv", "# poles\nid,lat,lon\na,51.0,10.0\nb,51.0,10.01\n").unwrap();
        assert_eq!(s.coords, Coords::LatLon);
        let d = s.distance_m(0, 1);
        let proj = (s.sites[0].x_m - s.sites[1].x_m).hypot(s.sites[0].y_m - s.sites[1].y_m);
        assert!((d - 699.7).abs() < 1.0, "{d}");
        assert!((d - proj).abs() < 0.01, "{d} vs {proj}");
    }

    #[test]
    fn bad_files_name_the_line() {
        let e = parse("p.csv", "id,x_m,y_m\na,0,0\nb,1,1\na,2,2\n").unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.message.contains("duplicate site id `a`") && e.message.contains("line 2"), "{}", e.message);
        let e = parse("p.csv", "id,x_m\na,0\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("missing column(s) y_m"), "{}", e.message);
        let e = parse("p.csv", "id,lat,lon\na,51,10\nb,51.1,ten\n").unwrap_err();
        assert_eq!((e.line, e.col), (3, 8));
        assert!(e.message.contains("`ten` is not a finite number"), "{}", e.message);
        let e = parse("p.csv", "id,x_m,y_m\na,0\n").unwrap_err();
        assert!(e.message.contains("2 fields"), "{}", e.message);
    }
}
