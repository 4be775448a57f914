//! Geodesic distance on the WGS84 ellipsoid (Vincenty's inverse formula) and
//! the bounding box that prefilters nearby beacons on SQLite.

const A: f64 = 6_378_137.0;
const F: f64 = 1.0 / 298.257_223_563;
const B: f64 = A * (1.0 - F);
/// Mean Earth radius (IUGG), for the haversine fallback only.
const MEAN_RADIUS: f64 = 6_371_008.8;

/// Distance in metres between two points given in degrees.
pub fn distance_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    vincenty(lat1, lon1, lat2, lon2).unwrap_or_else(|| haversine(lat1, lon1, lat2, lon2))
}

/// Vincenty (1975) inverse; `None` when it does not converge (nearly antipodal points).
fn vincenty(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> Option<f64> {
    let l = (lon2 - lon1).to_radians();
    let u1 = ((1.0 - F) * lat1.to_radians().tan()).atan();
    let u2 = ((1.0 - F) * lat2.to_radians().tan()).atan();
    let (sin_u1, cos_u1) = u1.sin_cos();
    let (sin_u2, cos_u2) = u2.sin_cos();
    let mut lambda = l;
    for _ in 0..200 {
        let (sin_l, cos_l) = lambda.sin_cos();
        let sin_sigma =
            ((cos_u2 * sin_l).powi(2) + (cos_u1 * sin_u2 - sin_u1 * cos_u2 * cos_l).powi(2)).sqrt();
        if sin_sigma == 0.0 {
            return Some(0.0);
        }
        let cos_sigma = sin_u1 * sin_u2 + cos_u1 * cos_u2 * cos_l;
        let sigma = sin_sigma.atan2(cos_sigma);
        let sin_alpha = cos_u1 * cos_u2 * sin_l / sin_sigma;
        let cos2_alpha = 1.0 - sin_alpha * sin_alpha;
        // On the equator cos²α is 0 and the term vanishes.
        let cos_2sm = if cos2_alpha == 0.0 {
            0.0
        } else {
            cos_sigma - 2.0 * sin_u1 * sin_u2 / cos2_alpha
        };
        let c = F / 16.0 * cos2_alpha * (4.0 + F * (4.0 - 3.0 * cos2_alpha));
        let previous = lambda;
        lambda = l
            + (1.0 - c)
                * F
                * sin_alpha
                * (sigma
                    + c * sin_sigma * (cos_2sm + c * cos_sigma * (-1.0 + 2.0 * cos_2sm * cos_2sm)));
        if (lambda - previous).abs() < 1e-12 {
            let u_sq = cos2_alpha * (A * A - B * B) / (B * B);
            let a =
                1.0 + u_sq / 16384.0 * (4096.0 + u_sq * (-768.0 + u_sq * (320.0 - 175.0 * u_sq)));
            let b = u_sq / 1024.0 * (256.0 + u_sq * (-128.0 + u_sq * (74.0 - 47.0 * u_sq)));
            let delta_sigma = b
                * sin_sigma
                * (cos_2sm
                    + b / 4.0
                        * (cos_sigma * (-1.0 + 2.0 * cos_2sm * cos_2sm)
                            - b / 6.0
                                * cos_2sm
                                * (-3.0 + 4.0 * sin_sigma * sin_sigma)
                                * (-3.0 + 4.0 * cos_2sm * cos_2sm)));
            return Some(B * a * (sigma - delta_sigma));
        }
    }
    None
}

fn haversine(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * MEAN_RADIUS * h.sqrt().min(1.0).asin()
}

/// A latitude/longitude box holding every point within `radius` metres of
/// the centre, with a margin. Longitude ranges may wrap the antimeridian.
#[derive(Clone, Debug, PartialEq)]
pub struct BoundingBox {
    pub min_lat: f64,
    pub max_lat: f64,
    /// `None`: every longitude (the box reaches a pole).
    pub lon_ranges: Option<Vec<(f64, f64)>>,
}

pub fn bounding_box(lat: f64, lon: f64, radius: f64) -> BoundingBox {
    // A degree of latitude is at least 110,574 m; 1 % margin on top.
    let dlat = radius / 110_574.0 * 1.01;
    let min_lat = (lat - dlat).max(-90.0);
    let max_lat = (lat + dlat).min(90.0);
    let widest = min_lat.abs().max(max_lat.abs());
    if widest >= 85.0 {
        return BoundingBox {
            min_lat,
            max_lat,
            lon_ranges: None,
        };
    }
    // A degree of longitude at latitude φ is at least 111,319 m · cos φ (equatorial radius, on the sphere less).
    let dlon = radius / (111_319.0 * widest.to_radians().cos() * 0.99) * 1.01;
    if dlon >= 180.0 {
        return BoundingBox {
            min_lat,
            max_lat,
            lon_ranges: None,
        };
    }
    let (lo, hi) = (lon - dlon, lon + dlon);
    let lon_ranges = if lo < -180.0 {
        vec![(lo + 360.0, 180.0), (-180.0, hi)]
    } else if hi > 180.0 {
        vec![(lo, 180.0), (-180.0, hi - 360.0)]
    } else {
        vec![(lo, hi)]
    };
    BoundingBox {
        min_lat,
        max_lat,
        lon_ranges: Some(lon_ranges),
    }
}
