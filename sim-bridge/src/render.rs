//! A deterministic software renderer: one ray per pixel against the faces of oriented boxes,
//! z-buffered, then procedural textures shaded once per visible pixel.
//!
//! Faces are near-clipped and projected only to bound the pixels they can touch; each pixel then
//! intersects the face plane exactly, which gives depth and texture coordinates without
//! perspective-correction error. Outputs: rgb8, depth (metres along the optical axis) and a
//! per-pixel object id, plus each object's unoccluded in-frame pixel count (for visible fractions).
//! Every float operation is IEEE-exact or goes through `libm`, and rows are split into bands whose
//! results do not depend on the thread count: the same scene and pose give the same bytes on every
//! machine.

use crate::math::{V3, cos, fbm, hash2, hash32, sin, value_noise};
use crate::scene::{Material, Scene, SceneKind, SimObject};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Pinhole camera intrinsics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Camera {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Horizontal field of view in degrees.
    pub hfov_deg: f32,
}

impl Default for Camera {
    fn default() -> Self {
        Self {
            width: 640,
            height: 480,
            hfov_deg: 90.0,
        }
    }
}

impl Camera {
    /// Focal length in pixels (square pixels: fx = fy).
    pub fn focal(&self) -> f32 {
        (self.width as f32 / 2.0) / libm::tanf(crate::math::rad(self.hfov_deg) / 2.0)
    }
    /// Principal point.
    pub fn center(&self) -> (f32, f32) {
        (self.width as f32 / 2.0, self.height as f32 / 2.0)
    }
    /// Vertical field of view in degrees.
    pub fn vfov_deg(&self) -> f32 {
        crate::math::deg(2.0 * libm::atanf((self.height as f32 / 2.0) / self.focal()))
    }
}

/// Where the camera is and where it looks: position, heading (yaw, radians counter-clockwise from
/// world x) and pitch (radians, positive up). There is no roll.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CameraPose {
    /// Position (metres, world frame).
    pub position: V3,
    /// Heading, radians.
    pub yaw: f32,
    /// Pitch, radians (positive looks up).
    pub pitch: f32,
}

impl CameraPose {
    /// (forward, right, up) unit vectors in the world.
    pub fn basis(&self) -> (V3, V3, V3) {
        let (sy, cy) = (sin(self.yaw), cos(self.yaw));
        let (sp, cp) = (sin(self.pitch), cos(self.pitch));
        let f = V3::new(cp * cy, cp * sy, sp);
        let r = V3::new(sy, -cy, 0.0);
        let u = r.cross(f);
        (f, r, u)
    }

    /// World point in camera coordinates (x right, y up, z forward).
    pub fn to_camera(&self, p: V3) -> V3 {
        let (f, r, u) = self.basis();
        let d = p - self.position;
        V3::new(d.dot(r), d.dot(u), d.dot(f))
    }

    /// The pose as an isometry from the camera optical frame (x right, y down, z forward) to the
    /// world (see [`embodied_r_perception::Pose`]).
    pub fn isometry(&self) -> embodied_r_perception::Pose {
        use nalgebra::{Matrix3, Rotation3, Translation3, UnitQuaternion, Vector3};
        let (f, r, u) = self.basis();
        let col = |v: V3| Vector3::new(f64::from(v.x), f64::from(v.y), f64::from(v.z));
        let m = Matrix3::from_columns(&[col(r), -col(u), col(f)]);
        let rot = Rotation3::from_matrix_unchecked(m);
        let p = self.position;
        nalgebra::Isometry3::from_parts(
            Translation3::new(f64::from(p.x), f64::from(p.y), f64::from(p.z)),
            UnitQuaternion::from_rotation_matrix(&rot),
        )
    }
}

/// One rendered view.
#[derive(Debug, Clone, PartialEq)]
pub struct Render {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// rgb8, row-major.
    pub rgb: Vec<u8>,
    /// Depth along the optical axis in metres; `f32::INFINITY` where nothing was hit (sky).
    pub depth: Vec<f32>,
    /// Object id per pixel (0: nothing).
    pub ids: Vec<u16>,
    /// Per object (index id − 1): pixels it would cover in this frame if nothing occluded it.
    pub coverage: Vec<u32>,
}

const NEAR: f32 = 0.05;
const BAND_ROWS: usize = 16;

/// A face of a box, ready to rasterise.
struct Face {
    obj: usize,
    face: u8,
    c0: V3,
    a: V3,
    b: V3,
    la: f32,
    lb: f32,
    n: V3,
    /// n · (c0 − eye): negative for faces that look at the camera.
    num: f32,
    x0: usize,
    x1: usize,
    y0: usize,
    y1: usize,
}

/// The six faces of an object: (face id, corner, a axis, b axis, a length, b length, normal).
pub(crate) fn box_faces(o: &SimObject) -> [(u8, V3, V3, V3, f32, f32, V3); 6] {
    let [ex, ey, ez] = o.axes();
    let h = [o.size.x / 2.0, o.size.y / 2.0, o.size.z / 2.0];
    let axes = [ex, ey, ez];
    let mut out = [(
        0u8,
        V3::default(),
        V3::default(),
        V3::default(),
        0.0,
        0.0,
        V3::default(),
    ); 6];
    for k in 0..3 {
        let (ia, ib) = match k {
            0 => (1, 2),
            1 => (0, 2),
            _ => (0, 1),
        };
        for (si, s) in [-1.0f32, 1.0].into_iter().enumerate() {
            let center = o.center + axes[k] * (s * h[k]);
            let c0 = center - axes[ia] * h[ia] - axes[ib] * h[ib];
            let n = if o.inside_out {
                axes[k] * -s
            } else {
                axes[k] * s
            };
            out[k * 2 + si] = (
                (k * 2 + si) as u8,
                c0,
                axes[ia],
                axes[ib],
                2.0 * h[ia],
                2.0 * h[ib],
                n,
            );
        }
    }
    out
}

/// Renders `scene` from `pose`.
pub fn render(scene: &Scene, cam: &Camera, pose: &CameraPose) -> Render {
    let (w, h) = (cam.width as usize, cam.height as usize);
    let fx = cam.focal();
    let (cx, cy) = cam.center();
    let (f, r, u) = pose.basis();
    let eye = pose.position;

    // Collect front-facing, near-clipped faces with their screen bounds.
    let mut faces = Vec::new();
    for (oi, o) in scene.objects.iter().enumerate() {
        for (fid, c0, a, b, la, lb, n) in box_faces(o) {
            let num = n.dot(c0 - eye);
            if num >= 0.0 {
                continue;
            }
            let corners = [c0, c0 + a * la, c0 + a * la + b * lb, c0 + b * lb];
            let cam_pts = corners.map(|p| {
                let d = p - eye;
                V3::new(d.dot(r), d.dot(u), d.dot(f))
            });
            let Some((x0, x1, y0, y1)) = screen_bounds(&cam_pts, fx, cx, cy, w, h) else {
                continue;
            };
            faces.push(Face {
                obj: oi,
                face: fid,
                c0,
                a,
                b,
                la,
                lb,
                n,
                num,
                x0,
                x1,
                y0,
                y1,
            });
        }
    }

    let mut rgb = vec![0u8; w * h * 3];
    let mut depth = vec![f32::INFINITY; w * h];
    let mut ids = vec![0u16; w * h];
    let n_obj = scene.objects.len();
    let ctx = Ctx {
        scene,
        faces: &faces,
        w,
        fx,
        cx,
        cy,
        f,
        r,
        u,
        eye,
    };
    let coverages: Vec<Vec<u32>> = rgb
        .par_chunks_mut(BAND_ROWS * w * 3)
        .zip(depth.par_chunks_mut(BAND_ROWS * w))
        .zip(ids.par_chunks_mut(BAND_ROWS * w))
        .enumerate()
        .map(|(bi, ((rgb, depth), ids))| ctx.band(bi * BAND_ROWS, rgb, depth, ids, n_obj))
        .collect();
    let mut coverage = vec![0u32; n_obj];
    for c in coverages {
        for (t, v) in coverage.iter_mut().zip(c) {
            *t += v;
        }
    }
    Render {
        width: cam.width,
        height: cam.height,
        rgb,
        depth,
        ids,
        coverage,
    }
}

/// Pixel bounds (half-open) of a polygon given in camera coordinates, after clipping to the near
/// plane; `None` when nothing is in front of the camera or on screen.
fn screen_bounds(
    pts: &[V3; 4],
    fx: f32,
    cx: f32,
    cy: f32,
    w: usize,
    h: usize,
) -> Option<(usize, usize, usize, usize)> {
    let mut clipped: Vec<V3> = Vec::with_capacity(8);
    for i in 0..4 {
        let p = pts[i];
        let q = pts[(i + 1) % 4];
        let pin = p.z >= NEAR;
        let qin = q.z >= NEAR;
        if pin {
            clipped.push(p);
        }
        if pin != qin {
            let t = (NEAR - p.z) / (q.z - p.z);
            clipped.push(p + (q - p) * t);
        }
    }
    if clipped.is_empty() {
        return None;
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for p in &clipped {
        let sx = cx + fx * p.x / p.z;
        let sy = cy - fx * p.y / p.z;
        x0 = x0.min(sx);
        x1 = x1.max(sx);
        y0 = y0.min(sy);
        y1 = y1.max(sy);
    }
    let clamp = |v: f32, hi: usize| -> usize { v.max(0.0).min(hi as f32) as usize };
    let (x0, x1) = (clamp(x0 - 1.0, w), clamp(x1 + 2.0, w));
    let (y0, y1) = (clamp(y0 - 1.0, h), clamp(y1 + 2.0, h));
    (x0 < x1 && y0 < y1).then_some((x0, x1, y0, y1))
}

struct Ctx<'a> {
    scene: &'a Scene,
    faces: &'a [Face],
    w: usize,
    fx: f32,
    cx: f32,
    cy: f32,
    f: V3,
    r: V3,
    u: V3,
    eye: V3,
}

/// Per-pixel surface record of the visibility pass.
#[derive(Clone, Copy)]
struct Hit {
    face: u16,
    u: f32,
    v: f32,
}

impl Ctx<'_> {
    fn ray(&self, x: usize, y: usize) -> V3 {
        let px = (x as f32 + 0.5 - self.cx) / self.fx;
        let py = (y as f32 + 0.5 - self.cy) / self.fx;
        self.f + self.r * px - self.u * py
    }

    fn band(
        &self,
        row0: usize,
        rgb: &mut [u8],
        depth: &mut [f32],
        ids: &mut [u16],
        n_obj: usize,
    ) -> Vec<u32> {
        let w = self.w;
        let rows = depth.len() / w;
        let row1 = row0 + rows;
        let mut coverage = vec![0u32; n_obj];
        let mut hits = vec![
            Hit {
                face: u16::MAX,
                u: 0.0,
                v: 0.0
            };
            rows * w
        ];
        for (fi, face) in self.faces.iter().enumerate() {
            let (y0, y1) = (face.y0.max(row0), face.y1.min(row1));
            if y0 >= y1 {
                continue;
            }
            let eps_a = 1e-4 * face.la.max(1.0);
            let eps_b = 1e-4 * face.lb.max(1.0);
            let rel = face.c0 - self.eye;
            let mut covered = 0u32;
            for y in y0..y1 {
                for x in face.x0..face.x1 {
                    let d = self.ray(x, y);
                    let denom = face.n.dot(d);
                    if denom >= -1e-9 {
                        continue;
                    }
                    let t = face.num / denom;
                    if t <= NEAR {
                        continue;
                    }
                    let q = d * t - rel;
                    let uu = q.dot(face.a);
                    let vv = q.dot(face.b);
                    if uu < -eps_a || uu > face.la + eps_a || vv < -eps_b || vv > face.lb + eps_b {
                        continue;
                    }
                    covered += 1;
                    let i = (y - row0) * w + x;
                    if t < depth[i] {
                        depth[i] = t;
                        ids[i] = self.scene.objects[face.obj].id;
                        hits[i] = Hit {
                            face: fi as u16,
                            u: uu,
                            v: vv,
                        };
                    }
                }
            }
            coverage[face.obj] += covered;
        }
        for yy in 0..rows {
            for x in 0..w {
                let i = yy * w + x;
                let d = self.ray(x, row0 + yy);
                let c = if hits[i].face == u16::MAX {
                    sky(self.scene.kind, d)
                } else {
                    let hit = hits[i];
                    let face = &self.faces[usize::from(hit.face)];
                    let o = &self.scene.objects[face.obj];
                    let p = self.eye + d * depth[i];
                    let base = texture(o, face.face, face.n, hit.u, hit.v, face.la, face.lb, p);
                    let lit = light(self.scene.kind, face.n);
                    let mut c = [base[0] * lit, base[1] * lit, base[2] * lit];
                    if self.scene.kind == SceneKind::City {
                        let fog = 1.0 - libm::expf(-depth[i] / 900.0);
                        let s = sky(SceneKind::City, d);
                        for k in 0..3 {
                            c[k] += (s[k] - c[k]) * fog;
                        }
                    }
                    c
                };
                for k in 0..3 {
                    rgb[i * 3 + k] = c[k].clamp(0.0, 255.0) as u8;
                }
            }
        }
        coverage
    }
}

fn sky(kind: SceneKind, d: V3) -> [f32; 3] {
    match kind {
        SceneKind::Indoor => [20.0, 20.0, 24.0],
        SceneKind::City => {
            let e = (d.z / d.norm()).clamp(-1.0, 1.0);
            let t = (e * 2.5).clamp(0.0, 1.0);
            let horizon = [205.0, 218.0, 232.0];
            let zenith = [92.0, 142.0, 212.0];
            [
                horizon[0] + (zenith[0] - horizon[0]) * t,
                horizon[1] + (zenith[1] - horizon[1]) * t,
                horizon[2] + (zenith[2] - horizon[2]) * t,
            ]
        }
    }
}

fn light(kind: SceneKind, n: V3) -> f32 {
    let l = V3::new(0.42, 0.28, 0.86);
    match kind {
        SceneKind::City => 0.5 + 0.5 * n.dot(l).max(0.0),
        SceneKind::Indoor => 0.66 + 0.34 * (0.5 + 0.5 * n.dot(l)),
    }
}

fn frac(x: f32) -> f32 {
    x - x.floor()
}

fn scale(c: [u8; 3], s: f32) -> [f32; 3] {
    [
        f32::from(c[0]) * s,
        f32::from(c[1]) * s,
        f32::from(c[2]) * s,
    ]
}

fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// Procedural texture of object `o` at (u, v) metres on face `face` (la × lb), world point `p`.
#[allow(clippy::too_many_arguments)]
fn texture(o: &SimObject, face: u8, n: V3, u: f32, v: f32, la: f32, lb: f32, p: V3) -> [f32; 3] {
    let seed = hash32(u32::from(o.id).wrapping_mul(2654435761) ^ 0x51ed);
    let side = face < 4; // faces 0..3 are vertical sides, 4/5 bottom/top
    match o.material {
        Material::Facade {
            floor_height,
            window_spacing,
            glass,
        } => {
            let wall = scale(o.rgb, 0.82 + 0.3 * fbm(u * 0.6, v * 0.6, seed));
            if !side {
                // Roof: gravel with a parapet and vents.
                let edge = u.min(v).min(la - u).min(lb - v);
                let g = 0.55
                    + 0.25 * value_noise(u * 3.0, v * 3.0, seed)
                    + 0.1 * hash2((u * 20.0) as i32, (v * 20.0) as i32, seed);
                let mut c = [150.0 * g, 148.0 * g, 142.0 * g];
                if edge < 0.5 {
                    c = scale(o.rgb, 0.95);
                }
                let cellx = (u / 6.0).floor() as i32;
                let celly = (v / 6.0).floor() as i32;
                if hash2(cellx, celly, seed ^ 7) < 0.12
                    && frac(u / 6.0) < 0.4
                    && frac(v / 6.0) < 0.4
                {
                    c = [90.0, 92.0, 96.0];
                }
                return c;
            }
            let cu = u / window_spacing;
            let cv = v / floor_height;
            let (fu, fv) = (frac(cu), frac(cv));
            let floor = cv.floor() as i32;
            if fv < 0.05 {
                return scale(o.rgb, 0.62);
            }
            let (wu0, wu1, wv0, wv1) = if floor == 0 {
                (0.08, 0.92, 0.08, 0.78)
            } else {
                (0.22, 0.78, 0.3, 0.82)
            };
            if fu > wu0 && fu < wu1 && fv > wv0 && fv < wv1 {
                let border = (fu - wu0).min(wu1 - fu) * window_spacing;
                let borderv = (fv - wv0).min(wv1 - fv) * floor_height;
                if border.min(borderv) < 0.08 {
                    return [55.0, 55.0, 58.0];
                }
                let cell = hash2(cu.floor() as i32 + face as i32 * 1000, floor, seed);
                let lit = if cell < 0.15 { 1.5 } else { 0.8 + 0.4 * cell };
                let g = 0.8 + 0.35 * (fv - wv0) / (wv1 - wv0);
                return scale(glass, lit * g);
            }
            wall
        }
        Material::CityGround { pitch, road } => city_ground(p, pitch, road, seed),
        Material::Concrete => {
            let g = 0.78 + 0.3 * fbm(u * 0.8, v * 0.8, seed);
            let panel = frac(u / 2.0) < 0.02 || frac(v / 2.0) < 0.025;
            scale(o.rgb, if panel { g * 0.65 } else { g })
        }
        Material::Vehicle => {
            let paint = scale(o.rgb, 0.92 + 0.1 * value_noise(u * 4.0, v * 4.0, seed));
            if !side {
                if frac(u / la * 3.0) < 0.04 {
                    return [40.0, 40.0, 40.0];
                }
                return paint;
            }
            let fu = u / la;
            let fvv = v / lb;
            for wc in [0.2f32, 0.8] {
                let du = (fu - wc) * la;
                let dv = v - 0.35;
                if la > 2.0 && du * du + dv * dv < 0.35 * 0.35 {
                    return if du * du + dv * dv < 0.15 * 0.15 {
                        [150.0, 150.0, 155.0]
                    } else {
                        [22.0, 22.0, 24.0]
                    };
                }
            }
            if fvv > 0.55 && fvv < 0.9 && fu > 0.12 && fu < 0.88 {
                let pillar = la > 2.0 && frac(fu * 3.0) < 0.06;
                return if pillar { paint } else { [35.0, 45.0, 55.0] };
            }
            paint
        }
        Material::Foliage => {
            let nz = fbm(u * 2.5 + p.z, v * 2.5 - p.z, seed);
            let clump = value_noise(u * 7.0, v * 7.0, seed ^ 3);
            let g = if clump > 0.62 { 0.55 } else { 0.8 + 0.5 * nz };
            scale(o.rgb, g)
        }
        Material::Bark => scale(o.rgb, 0.75 + 0.35 * value_noise(u * 25.0, v * 2.0, seed)),
        Material::Wood => {
            let grain = frac((v + 0.35 * fbm(u * 1.2, v * 5.0, seed)) * 11.0);
            let mut c = scale(o.rgb, 0.78 + 0.24 * grain);
            let plank = if side {
                frac(u / 0.18) < 0.04
            } else {
                frac(v / 0.2) < 0.04
            };
            if o.category == "door" && side {
                // Raised panels and a handle.
                let (mu, mv) = (u.min(la - u), v.min(lb - v));
                let inset = (mu > 0.12 && mu < 0.16) || (mv > 0.12 && mv < 0.16);
                let mid = (v - lb * 0.5).abs() < 0.03 && mu > 0.12;
                if inset || mid {
                    c = scale(o.rgb, 0.55);
                }
                let hx = (u - la * 0.85).abs();
                if hx < 0.05 && (v - 1.0).abs() < 0.05 {
                    c = [200.0, 190.0, 150.0];
                }
                return c;
            }
            if plank {
                c = scale(o.rgb, 0.6);
            }
            let edge = u.min(la - u).min(v).min(lb - v);
            if edge < 0.02 {
                c = scale(o.rgb, 0.55);
            }
            c
        }
        Material::Fabric => {
            let weave = 0.86 + 0.14 * value_noise(u * 45.0, v * 45.0, seed);
            let seam = frac(u / 0.62) < 0.03 || (side && (v - lb * 0.55).abs() < 0.015);
            let edge = u.min(la - u).min(v).min(lb - v) < 0.03;
            scale(o.rgb, if seam || edge { weave * 0.62 } else { weave })
        }
        Material::Metal => {
            let brushed = 0.88 + 0.12 * value_noise(u * 80.0, v * 3.0, seed);
            let fin = frac(u / 0.07) < 0.28 && v > lb * 0.1 && v < lb * 0.9;
            let edge = u.min(la - u).min(v).min(lb - v) < 0.015;
            scale(o.rgb, if fin || edge { brushed * 0.6 } else { brushed })
        }
        Material::Screen => {
            let front = face == 3;
            if !front {
                return [40.0, 40.0, 44.0];
            }
            let bezel = u.min(la - u).min(v).min(lb - v) < 0.04;
            if bezel {
                return if o.category == "picture" {
                    scale(o.rgb, 0.8)
                } else {
                    [18.0, 18.0, 20.0]
                };
            }
            // A picture: a few coloured blocks over a gradient.
            let bx = (u / 0.2).floor() as i32;
            let by = (v / 0.15).floor() as i32;
            let hsh = hash2(bx, by, seed);
            let g = 40.0 + 60.0 * v / lb;
            if hsh > 0.7 {
                [g + 120.0 * hsh, g + 40.0, g + 90.0 * (1.0 - hsh)]
            } else {
                [g * 0.6, g * 0.8, g * 1.2]
            }
        }
        Material::Glass => {
            let frame = u.min(la - u).min(v).min(lb - v) < 0.06
                || (u - la / 2.0).abs() < 0.03
                || (v - lb / 2.0).abs() < 0.03;
            if frame || !side {
                return scale(o.rgb, 0.95);
            }
            let t = v / lb;
            mix([200.0, 220.0, 235.0], [120.0, 165.0, 220.0], t)
        }
        Material::RoomShell => {
            if n.z > 0.5 {
                // Floor tiles.
                let (tu, tv) = (u / 0.6, v / 0.6);
                if frac(tu) < 0.02 || frac(tv) < 0.02 {
                    return [70.0, 66.0, 60.0];
                }
                let t = hash2(tu.floor() as i32, tv.floor() as i32, seed);
                let g = 0.75 + 0.2 * t + 0.1 * value_noise(u * 8.0, v * 8.0, seed);
                [190.0 * g, 175.0 * g, 150.0 * g]
            } else if n.z < -0.5 {
                let g = 0.92 + 0.06 * value_noise(u * 2.0, v * 2.0, seed);
                let panel = frac(u / 1.2) < 0.01 || frac(v / 1.2) < 0.01;
                let g = if panel { g * 0.8 } else { g };
                [235.0 * g, 235.0 * g, 230.0 * g]
            } else {
                if v < 0.1 {
                    return if v > 0.09 {
                        [80.0, 80.0, 80.0]
                    } else {
                        [235.0, 235.0, 230.0]
                    };
                }
                // Wallpaper: a small diamond motif on a 0.3 m grid over a soft mottling.
                let g = 0.88 + 0.12 * fbm(u * 1.5, v * 1.5, seed ^ u32::from(face));
                let (du, dv) = (frac(u / 0.3) - 0.5, frac(v / 0.3) - 0.5);
                let motif = du.abs() + dv.abs() < 0.12;
                scale(o.rgb, if motif { g * 0.72 } else { g })
            }
        }
    }
}

fn city_ground(p: V3, pitch: f32, road: f32, seed: u32) -> [f32; 3] {
    let mx = p.x - (p.x / pitch).floor() * pitch;
    let my = p.y - (p.y / pitch).floor() * pitch;
    let on_x = mx < road; // a road running along y
    let on_y = my < road; // a road running along x
    if on_x || on_y {
        let g = 0.7 + 0.3 * value_noise(p.x * 2.0, p.y * 2.0, seed);
        let mut c = [78.0 * g, 78.0 * g, 82.0 * g];
        if on_x && !on_y && (mx - road / 2.0).abs() < 0.15 && frac(p.y / 6.0) < 0.5 {
            c = [225.0, 215.0, 120.0];
        }
        if on_y && !on_x && (my - road / 2.0).abs() < 0.15 && frac(p.x / 6.0) < 0.5 {
            c = [225.0, 215.0, 120.0];
        }
        // Zebra crossings at the edges of intersections.
        if on_x && on_y {
            let near_edge_x = mx < 3.0 || mx > road - 3.0;
            if near_edge_x && frac(p.y / 1.2) < 0.5 {
                c = [220.0, 220.0, 220.0];
            }
        }
        return c;
    }
    let inner_x = mx - road;
    let inner_y = my - road;
    let block = pitch - road;
    let edge = inner_x
        .min(inner_y)
        .min(block - inner_x)
        .min(block - inner_y);
    if edge < 3.0 {
        // Sidewalk slabs.
        if frac(p.x) < 0.04 || frac(p.y) < 0.04 {
            return [120.0, 120.0, 118.0];
        }
        let t = hash2(p.x.floor() as i32, p.y.floor() as i32, seed);
        let g = 0.82 + 0.12 * t;
        return [185.0 * g, 182.0 * g, 176.0 * g];
    }
    let g = 0.6 + 0.5 * fbm(p.x * 0.4, p.y * 0.4, seed ^ 11);
    [70.0 * g, 120.0 * g, 60.0 * g]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isometry_matches_basis() {
        let pose = CameraPose {
            position: V3::new(1.0, 2.0, 3.0),
            yaw: 0.7,
            pitch: -0.2,
        };
        let iso = pose.isometry();
        let (f, r, u) = pose.basis();
        // Optical z (forward) maps onto f, optical x onto r, optical y onto -u.
        let z = iso.rotation * nalgebra::Vector3::new(0.0, 0.0, 1.0);
        let x = iso.rotation * nalgebra::Vector3::new(1.0, 0.0, 0.0);
        let y = iso.rotation * nalgebra::Vector3::new(0.0, 1.0, 0.0);
        assert!((z.x as f32 - f.x).abs() < 1e-5 && (z.z as f32 - f.z).abs() < 1e-5);
        assert!((x.y as f32 - r.y).abs() < 1e-5);
        assert!((y.z as f32 + u.z).abs() < 1e-5);
        assert!((iso.translation.vector.z - 3.0).abs() < 1e-9);
    }

    #[test]
    fn render_finds_the_object_in_front() {
        let scene = Scene::generate(SceneKind::Indoor, 5, 0);
        let cam = Camera {
            width: 96,
            height: 72,
            hfov_deg: 90.0,
        };
        let door = scene.by_name("door").unwrap();
        // Stand 1.5 m in front of the door (inside the room) and look at it.
        let [_, ey, _] = door.axes();
        let pos = door.center + ey * 1.5;
        let pose = CameraPose {
            position: V3::new(pos.x, pos.y, door.center.z),
            yaw: crate::math::atan2(-ey.y, -ey.x),
            pitch: 0.0,
        };
        let img = render(&scene, &cam, &pose);
        let center = (36 * 96 + 48) as usize;
        assert_eq!(img.ids[center], door.id);
        assert!(
            (img.depth[center] - 1.5 + 0.03).abs() < 0.02,
            "{}",
            img.depth[center]
        );
        let vis = img.ids.iter().filter(|&&i| i == door.id).count() as u32;
        assert!(img.coverage[usize::from(door.id) - 1] >= vis);
        // Every pixel inside the room hits something.
        assert!(img.ids.iter().all(|&i| i != 0));
    }
}
