//! Procedural, seeded scenes: city blocks for a drone and indoor rooms for a walking robot.
//!
//! Every object is an oriented box (yaw about the vertical axis), which is what the renderer,
//! the ground truth and the question generators share. Sizes of indoor furniture are those of
//! common real pieces; city blocks follow a regular street grid.

use crate::math::{V3, cos, sin};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The two kinds of scene, mirroring UrbanVideo-Bench (drone, city) and VSI-Bench (indoor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SceneKind {
    /// Outdoor city blocks, seen from a drone.
    City,
    /// An indoor room, seen from a walking robot.
    Indoor,
}

impl SceneKind {
    /// "city" or "indoor".
    pub fn as_str(self) -> &'static str {
        match self {
            SceneKind::City => "city",
            SceneKind::Indoor => "indoor",
        }
    }
}

/// How a surface is textured. Each carries edges and noise so feature detectors find corners.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Material {
    /// Building facade: walls with a grid of windows per floor; roof on top.
    Facade {
        /// Storey height in metres.
        floor_height: f32,
        /// Horizontal window spacing in metres.
        window_spacing: f32,
        /// Window glass colour.
        glass: [u8; 3],
    },
    /// City ground: asphalt roads with lane markings, sidewalks, grass inside blocks.
    CityGround {
        /// Block pitch (block + road) in metres.
        pitch: f32,
        /// Road width in metres.
        road: f32,
    },
    /// Concrete with stains (tower, bridge, balcony).
    Concrete,
    /// Car or truck paint with a band of dark windows.
    Vehicle,
    /// Tree crown.
    Foliage,
    /// Tree trunk.
    Bark,
    /// Wood with grain (tables, doors, shelves, bed frames).
    Wood,
    /// Upholstery with seams (sofa, chair, bed).
    Fabric,
    /// Painted or brushed metal (lamp, heater, computer tower).
    Metal,
    /// A screen: dark glass in a bezel on the front, plastic elsewhere.
    Screen,
    /// A window: glass panes with mullions.
    Glass,
    /// The inside of a room: tiled floor, painted walls with a skirting board, ceiling.
    RoomShell,
}

/// One object of a scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimObject {
    /// Object id, as written in the id buffer (0 is "nothing"/sky).
    pub id: u16,
    /// Unique, human-readable name used in questions ("red sofa", "tower").
    pub name: String,
    /// Category ("sofa", "building", "tree").
    pub category: String,
    /// Colour name, as a describer would say it.
    pub color: String,
    /// Base colour.
    pub rgb: [u8; 3],
    /// Centre of the box (metres, world frame, z up).
    pub center: V3,
    /// Extent along the box's own x (length), y (depth) and z (height), metres.
    pub size: V3,
    /// Heading of the box's x axis, radians counter-clockwise from world x.
    pub yaw: f32,
    /// Surface texture.
    pub material: Material,
    /// Landmarks are what city questions name (tower, bridge, balcony, distinct buildings).
    pub landmark: bool,
    /// Seen from inside (the room shell): faces point inwards.
    pub inside_out: bool,
    /// Part of the environment (ground, room shell), not an object questions ask about.
    pub structure: bool,
}

impl SimObject {
    /// The box's local axes in the world (x, y, z).
    pub fn axes(&self) -> [V3; 3] {
        let (s, c) = (sin(self.yaw), cos(self.yaw));
        [
            V3::new(c, s, 0.0),
            V3::new(-s, c, 0.0),
            V3::new(0.0, 0.0, 1.0),
        ]
    }

    /// Closest point of the box to `p` (the point itself when inside).
    pub fn closest_point(&self, p: V3) -> V3 {
        let ax = self.axes();
        let d = p - self.center;
        let half = [self.size.x / 2.0, self.size.y / 2.0, self.size.z / 2.0];
        let mut q = self.center;
        for k in 0..3 {
            let t = d.dot(ax[k]).clamp(-half[k], half[k]);
            q = q + ax[k] * t;
        }
        q
    }

    /// Distance from `p` to the box (0 inside).
    pub fn distance_to(&self, p: V3) -> f32 {
        (self.closest_point(p) - p).norm()
    }

    /// Whether the footprint, grown by `margin`, contains the horizontal position of `p` and `p`
    /// is below the top (plus margin).
    pub fn blocks(&self, p: V3, margin: f32) -> bool {
        if self.structure {
            return false;
        }
        let ax = self.axes();
        let d = p - self.center;
        d.dot(ax[0]).abs() <= self.size.x / 2.0 + margin
            && d.dot(ax[1]).abs() <= self.size.y / 2.0 + margin
            && d.z.abs() <= self.size.z / 2.0 + margin
    }

    /// Top of the box (metres).
    pub fn top(&self) -> f32 {
        self.center.z + self.size.z / 2.0
    }
}

/// A generated scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// Unique scene name ("city_0003"); also the split key.
    pub name: String,
    /// City or indoor.
    pub kind: SceneKind,
    /// The seed it was generated from.
    pub seed: u64,
    /// All objects; `objects[i].id == i + 1`.
    pub objects: Vec<SimObject>,
    /// Walkable / flyable region: min corner.
    pub bounds_min: V3,
    /// Walkable / flyable region: max corner.
    pub bounds_max: V3,
    /// Floor area in square metres (indoor only).
    pub floor_area: Option<f32>,
}

impl Scene {
    /// The object with this id.
    pub fn object(&self, id: u16) -> Option<&SimObject> {
        self.objects.get(usize::from(id).checked_sub(1)?)
    }

    /// The object with this name.
    pub fn by_name(&self, name: &str) -> Option<&SimObject> {
        self.objects.iter().find(|o| o.name == name)
    }

    /// Objects questions may ask about (not the ground or the room shell).
    pub fn askable(&self) -> impl Iterator<Item = &SimObject> {
        self.objects.iter().filter(|o| !o.structure)
    }

    /// Whether a camera at `p` would be inside an object or outside the region.
    pub fn collides(&self, p: V3, margin: f32) -> bool {
        let out = p.x < self.bounds_min.x
            || p.y < self.bounds_min.y
            || p.z < self.bounds_min.z
            || p.x > self.bounds_max.x
            || p.y > self.bounds_max.y
            || p.z > self.bounds_max.z;
        out || self.objects.iter().any(|o| o.blocks(p, margin))
    }

    /// Generates scene number `index` of `kind` from a benchmark seed.
    pub fn generate(kind: SceneKind, seed: u64, index: u32) -> Scene {
        let scene_seed = seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(u64::from(index) * 2 + u64::from(kind == SceneKind::Indoor));
        let mut rng = ChaCha8Rng::seed_from_u64(scene_seed);
        let name = format!("{}_{:04}", kind.as_str(), index);
        let mut b = Builder::default();
        let (bounds_min, bounds_max, floor_area) = match kind {
            SceneKind::City => city(&mut b, &mut rng),
            SceneKind::Indoor => indoor(&mut b, &mut rng),
        };
        Scene {
            name,
            kind,
            seed: scene_seed,
            objects: b.objects,
            bounds_min,
            bounds_max,
            floor_area,
        }
    }
}

/// Named colours with their rgb values.
const PALETTE: [(&str, [u8; 3]); 12] = [
    ("red", [170, 52, 44]),
    ("grey", [128, 128, 130]),
    ("white", [222, 220, 212]),
    ("beige", [205, 186, 150]),
    ("blue", [58, 92, 160]),
    ("brown", [120, 82, 52]),
    ("yellow", [214, 182, 60]),
    ("green", [66, 128, 70]),
    ("black", [38, 38, 42]),
    ("orange", [206, 118, 46]),
    ("pink", [212, 140, 160]),
    ("purple", [112, 70, 140]),
];

/// The palette, for describers that need a wrong colour.
pub fn palette_names() -> impl Iterator<Item = &'static str> {
    PALETTE.iter().map(|(n, _)| *n)
}

fn pick_color(rng: &mut ChaCha8Rng, from: &[usize]) -> (&'static str, [u8; 3]) {
    let i = from[rng.random_range(0..from.len() as u32) as usize];
    PALETTE[i]
}

#[derive(Default)]
struct Builder {
    objects: Vec<SimObject>,
}

struct Spec<'a> {
    name: String,
    category: &'a str,
    color: (&'static str, [u8; 3]),
    center: V3,
    size: V3,
    yaw: f32,
    material: Material,
}

impl Builder {
    fn push(&mut self, s: Spec<'_>) -> usize {
        let id = self.objects.len() as u16 + 1;
        self.objects.push(SimObject {
            id,
            name: s.name,
            category: s.category.to_string(),
            color: s.color.0.to_string(),
            rgb: s.color.1,
            center: s.center,
            size: s.size,
            yaw: s.yaw,
            material: s.material,
            landmark: false,
            inside_out: false,
            structure: false,
        });
        self.objects.len() - 1
    }

    fn overlaps(&self, c: V3, size: V3, yaw: f32, margin: f32) -> bool {
        // Conservative: compare bounding circles of footprints, then exact corner tests.
        let r = 0.5 * (size.x * size.x + size.y * size.y).sqrt();
        self.objects.iter().filter(|o| !o.structure).any(|o| {
            let ro = 0.5 * (o.size.x * o.size.x + o.size.y * o.size.y).sqrt();
            let d = V3::new(c.x - o.center.x, c.y - o.center.y, 0.0).norm();
            if d > r + ro + margin {
                return false;
            }
            let (z0, z1) = (c.z - size.z / 2.0, c.z + size.z / 2.0);
            if z1 < o.center.z - o.size.z / 2.0 || z0 > o.top() {
                return false;
            }
            footprints_intersect(c, size, yaw, o.center, o.size, o.yaw, margin)
        })
    }
}

/// Separating-axis test of two yawed rectangles (grown by `margin`).
fn footprints_intersect(c1: V3, s1: V3, y1: f32, c2: V3, s2: V3, y2: f32, margin: f32) -> bool {
    let axes = [
        (cos(y1), sin(y1)),
        (-sin(y1), cos(y1)),
        (cos(y2), sin(y2)),
        (-sin(y2), cos(y2)),
    ];
    let corners = |c: V3, s: V3, y: f32| {
        let (a, b) = ((cos(y), sin(y)), (-sin(y), cos(y)));
        let (hx, hy) = (s.x / 2.0 + margin / 2.0, s.y / 2.0 + margin / 2.0);
        [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)].map(|(sx, sy): (f32, f32)| {
            (
                c.x + a.0 * hx * sx + b.0 * hy * sy,
                c.y + a.1 * hx * sx + b.1 * hy * sy,
            )
        })
    };
    let p1 = corners(c1, s1, y1);
    let p2 = corners(c2, s2, y2);
    axes.iter().all(|&(ax, ay)| {
        let proj = |ps: &[(f32, f32); 4]| {
            ps.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &(x, y)| {
                let v = x * ax + y * ay;
                (lo.min(v), hi.max(v))
            })
        };
        let (a0, a1) = proj(&p1);
        let (b0, b1) = proj(&p2);
        a1 >= b0 && b1 >= a0
    })
}

fn uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

/// City: a 3×3 grid of blocks separated by roads; buildings, a tower, a bridge over a road, a
/// balcony, vehicles and trees.
fn city(b: &mut Builder, rng: &mut ChaCha8Rng) -> (V3, V3, Option<f32>) {
    let blocks = 3;
    let block = 40.0_f32;
    let road = 12.0_f32;
    let pitch = block + road;
    let extent = blocks as f32 * pitch + road;
    // Ground: a slab whose top is z = 0.
    let gi = b.push(Spec {
        name: "ground".into(),
        category: "ground",
        color: ("grey", [110, 110, 110]),
        center: V3::new(extent / 2.0, extent / 2.0, -0.5),
        size: V3::new(extent + 400.0, extent + 400.0, 1.0),
        yaw: 0.0,
        material: Material::CityGround { pitch, road },
    });
    b.objects[gi].structure = true;

    let building_colors = [0, 1, 2, 3, 4, 5, 6, 9];
    let mut buildings = Vec::new();
    let tower_block = (rng.random_range(0..blocks), rng.random_range(0..blocks));
    for bx in 0..blocks {
        for by in 0..blocks {
            let x0 = road + bx as f32 * pitch;
            let y0 = road + by as f32 * pitch;
            if (bx, by) == tower_block {
                let h = uniform(rng, 85.0, 120.0);
                let w = uniform(rng, 7.0, 10.0);
                let i = b.push(Spec {
                    name: "tower".into(),
                    category: "tower",
                    color: pick_color(rng, &[1, 2, 9]),
                    center: V3::new(x0 + block / 2.0, y0 + block / 2.0, h / 2.0),
                    size: V3::new(w, w, h),
                    yaw: 0.0,
                    material: Material::Concrete,
                });
                b.objects[i].landmark = true;
                // Trees around the tower's plaza.
                for k in 0..4 {
                    let (dx, dy) = [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)][k];
                    tree(
                        b,
                        rng,
                        V3::new(
                            x0 + block / 2.0 + dx * 13.0,
                            y0 + block / 2.0 + dy * 13.0,
                            0.0,
                        ),
                    );
                }
                continue;
            }
            // Split the block into 1 or 2 lots per axis.
            let nx = rng.random_range(1..=2u32);
            let ny = rng.random_range(1..=2u32);
            for ix in 0..nx {
                for iy in 0..ny {
                    let lot_w = block / nx as f32;
                    let lot_d = block / ny as f32;
                    let w = uniform(rng, 0.55, 0.85) * lot_w;
                    let d = uniform(rng, 0.55, 0.85) * lot_d;
                    let h = uniform(rng, 9.0, 55.0);
                    let cx = x0 + lot_w * (ix as f32 + 0.5);
                    let cy = y0 + lot_d * (iy as f32 + 0.5);
                    let color = pick_color(rng, &building_colors);
                    let glass = [[60, 80, 110], [40, 60, 70], [90, 110, 130], [50, 50, 60]]
                        [rng.random_range(0..4u32) as usize];
                    let i = b.push(Spec {
                        name: String::new(),
                        category: "building",
                        color,
                        center: V3::new(cx, cy, h / 2.0),
                        size: V3::new(w, d, h),
                        yaw: 0.0,
                        material: Material::Facade {
                            floor_height: 3.0,
                            window_spacing: uniform(rng, 2.4, 4.0),
                            glass,
                        },
                    });
                    buildings.push(i);
                }
            }
        }
    }
    // Name buildings: colour alone when unique, else colour + height class.
    for &i in &buildings {
        let color = b.objects[i].color.clone();
        let same: Vec<usize> = buildings
            .iter()
            .copied()
            .filter(|&j| b.objects[j].color == color)
            .collect();
        let name = if same.len() == 1 {
            format!("{color} building")
        } else {
            let rank = same
                .iter()
                .filter(|&&j| b.objects[j].size.z > b.objects[i].size.z)
                .count();
            let class = match rank {
                0 => "tallest ".to_string(),
                r if r + 1 == same.len() => "lowest ".to_string(),
                r => format!("{} tallest ", ordinal(r + 1)),
            };
            format!("{class}{color} building")
        };
        b.objects[i].name = name;
        b.objects[i].landmark = same.len() == 1;
    }
    // A balcony on a given floor of the tallest building facing a road.
    if let Some(&host) = buildings
        .iter()
        .max_by(|&&a, &&c| b.objects[a].size.z.total_cmp(&b.objects[c].size.z))
    {
        let h = b.objects[host].clone();
        let floors = (h.size.z / 3.0) as u32;
        let floor = rng.random_range(2..floors.max(3));
        let z = floor as f32 * 3.0 - 1.5;
        let i = b.push(Spec {
            name: format!("balcony on floor {floor} of the {}", h.name),
            category: "balcony",
            color: ("white", [225, 225, 220]),
            center: V3::new(h.center.x, h.center.y - h.size.y / 2.0 - 0.75, z),
            size: V3::new(4.0, 1.5, 0.3),
            yaw: 0.0,
            material: Material::Concrete,
        });
        b.objects[i].landmark = true;
    }
    // A bridge over one east-west road, between two blocks.
    let row = rng.random_range(1..blocks);
    let bx = rng.random_range(0..blocks) as f32;
    let yc = row as f32 * pitch + road / 2.0;
    let i = b.push(Spec {
        name: "bridge".into(),
        category: "bridge",
        color: pick_color(rng, &[1, 2, 3]),
        center: V3::new(road + bx * pitch + block / 2.0, yc, 8.5),
        size: V3::new(6.0, road + 8.0, 1.2),
        yaw: 0.0,
        material: Material::Concrete,
    });
    b.objects[i].landmark = true;
    // Vehicles on roads, trees on sidewalks.
    let vehicle_colors = [0, 2, 4, 6, 8, 1];
    let mut seen = std::collections::HashMap::new();
    for _ in 0..rng.random_range(6..12u32) {
        let along = uniform(rng, 5.0, extent - 5.0);
        let lane = rng.random_range(0..=blocks as u32) as f32 * pitch
            + road / 2.0
            + if rng.random::<bool>() { 2.5 } else { -2.5 };
        let horizontal = rng.random::<bool>();
        let truck = rng.random::<f32>() < 0.25;
        let size = if truck {
            V3::new(8.0, 2.5, 3.2)
        } else {
            V3::new(4.5, 1.8, 1.5)
        };
        let (x, y, yaw) = if horizontal {
            (along, lane, 0.0)
        } else {
            (lane, along, std::f32::consts::FRAC_PI_2)
        };
        let center = V3::new(x, y, size.z / 2.0);
        if b.overlaps(center, size, yaw, 1.0) {
            continue;
        }
        let color = pick_color(rng, &vehicle_colors);
        let category = if truck { "truck" } else { "car" };
        let n = seen.entry((color.0, category)).or_insert(0u32);
        *n += 1;
        let name = if *n == 1 {
            format!("{} {category}", color.0)
        } else {
            format!("{} {category} {}", color.0, n)
        };
        b.push(Spec {
            name,
            category,
            color,
            center,
            size,
            yaw,
            material: Material::Vehicle,
        });
    }
    for _ in 0..rng.random_range(6..14u32) {
        let bxi = rng.random_range(0..blocks) as f32;
        let byi = rng.random_range(0..blocks) as f32;
        let side = rng.random_range(0..4u32);
        let t = uniform(rng, 3.0, block - 3.0);
        let (x0, y0) = (road + bxi * pitch, road + byi * pitch);
        let p = match side {
            0 => V3::new(x0 + t, y0 + 1.5, 0.0),
            1 => V3::new(x0 + t, y0 + block - 1.5, 0.0),
            2 => V3::new(x0 + 1.5, y0 + t, 0.0),
            _ => V3::new(x0 + block - 1.5, y0 + t, 0.0),
        };
        if !b.overlaps(V3::new(p.x, p.y, 3.0), V3::new(3.0, 3.0, 6.0), 0.0, 0.5) {
            tree(b, rng, p);
        }
    }
    // Number repeated tree names.
    let mut k = 0;
    for o in b.objects.iter_mut().filter(|o| o.category == "tree") {
        k += 1;
        o.name = format!("tree {k}");
    }
    (
        V3::new(-20.0, -20.0, 3.0),
        V3::new(extent + 20.0, extent + 20.0, 150.0),
        None,
    )
}

fn tree(b: &mut Builder, rng: &mut ChaCha8Rng, base: V3) {
    let h = uniform(rng, 4.0, 7.0);
    let crown = uniform(rng, 2.5, 4.0);
    b.push(Spec {
        name: "tree".into(),
        category: "tree",
        color: ("green", [52, 110, 48]),
        center: V3::new(base.x, base.y, h - crown / 2.0),
        size: V3::new(crown, crown, crown),
        yaw: uniform(rng, 0.0, 1.5),
        material: Material::Foliage,
    });
    // The trunk is part of the tree visually; it is structure so questions name the crown.
    let i = b.push(Spec {
        name: "tree trunk".into(),
        category: "tree trunk",
        color: ("brown", [92, 64, 40]),
        center: V3::new(base.x, base.y, (h - crown) / 2.0),
        size: V3::new(0.4, 0.4, h - crown),
        yaw: 0.0,
        material: Material::Bark,
    });
    b.objects[i].structure = true;
}

fn ordinal(n: usize) -> &'static str {
    [
        "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
    ]
    .get(n.saturating_sub(1))
    .copied()
    .unwrap_or("next")
}

/// Furniture of an indoor room: category, size (length, depth, height in metres), whether it
/// stands against a wall, the height of its base above the floor, and its material.
const FURNITURE: [(&str, [f32; 3], bool, f32, Material); 14] = [
    ("sofa", [2.0, 0.9, 0.85], true, 0.0, Material::Fabric),
    ("bed", [2.0, 1.6, 0.55], true, 0.0, Material::Fabric),
    ("table", [1.4, 0.8, 0.75], false, 0.0, Material::Wood),
    ("chair", [0.5, 0.52, 0.9], false, 0.0, Material::Wood),
    ("tv", [1.23, 0.08, 0.72], true, 0.95, Material::Screen),
    ("lamp", [0.32, 0.32, 1.6], false, 0.0, Material::Metal),
    ("heater", [0.8, 0.1, 0.6], true, 0.12, Material::Metal),
    (
        "computer tower",
        [0.2, 0.45, 0.45],
        false,
        0.0,
        Material::Metal,
    ),
    ("bookshelf", [0.8, 0.3, 1.8], true, 0.0, Material::Wood),
    ("refrigerator", [0.6, 0.65, 1.8], true, 0.0, Material::Metal),
    ("cabinet", [1.0, 0.45, 0.9], true, 0.0, Material::Wood),
    ("plant pot", [0.4, 0.4, 0.5], false, 0.0, Material::Foliage),
    ("picture", [0.7, 0.03, 0.5], true, 1.35, Material::Screen),
    ("picture", [0.5, 0.03, 0.7], true, 1.3, Material::Screen),
];

/// Indoor: a room shell with a door and a window, furniture against the walls and free-standing.
fn indoor(b: &mut Builder, rng: &mut ChaCha8Rng) -> (V3, V3, Option<f32>) {
    let w = uniform(rng, 4.5, 8.0);
    let d = uniform(rng, 4.0, 7.0);
    let h = uniform(rng, 2.6, 3.0);
    let wall = pick_color(rng, &[2, 3, 1, 6, 10]);
    let shell = b.push(Spec {
        name: "room".into(),
        category: "room",
        color: wall,
        center: V3::new(w / 2.0, d / 2.0, h / 2.0),
        size: V3::new(w, d, h),
        yaw: 0.0,
        material: Material::RoomShell,
    });
    b.objects[shell].inside_out = true;
    b.objects[shell].structure = true;

    // Walls: (position along, which wall). Wall k: 0 south (y=0, facing +y), 1 east (x=w),
    // 2 north (y=d), 3 west (x=0). Returns centre and yaw for an object of depth `depth` whose
    // back touches the wall.
    let wall_place = |k: u32, t: f32, depth: f32| -> (V3, f32) {
        match k {
            0 => (V3::new(t, depth / 2.0, 0.0), 0.0),
            1 => (
                V3::new(w - depth / 2.0, t, 0.0),
                std::f32::consts::FRAC_PI_2,
            ),
            2 => (V3::new(t, d - depth / 2.0, 0.0), std::f32::consts::PI),
            _ => (V3::new(depth / 2.0, t, 0.0), -std::f32::consts::FRAC_PI_2),
        }
    };
    let wall_len = |k: u32| if k.is_multiple_of(2) { w } else { d };

    // Door and window first (thin boxes on two different walls).
    let door_wall = rng.random_range(0..4u32);
    let t = uniform(rng, 0.8, wall_len(door_wall) - 0.8);
    let (c, yaw) = wall_place(door_wall, t, 0.06);
    b.push(Spec {
        name: "door".into(),
        category: "door",
        color: pick_color(rng, &[2, 5, 3]),
        center: V3::new(c.x, c.y, 1.025),
        size: V3::new(0.9, 0.06, 2.05),
        yaw,
        material: Material::Wood,
    });
    let window_wall = (door_wall + rng.random_range(1..4u32)) % 4;
    let t = uniform(rng, 1.0, wall_len(window_wall) - 1.0);
    let (c, yaw) = wall_place(window_wall, t, 0.05);
    let win = b.push(Spec {
        name: "window".into(),
        category: "window",
        color: ("white", [230, 230, 230]),
        center: V3::new(c.x, c.y, 1.5),
        size: V3::new(1.2, 0.05, 1.2),
        yaw,
        material: Material::Glass,
    });
    let _ = win;

    // Furniture: a random subset, placed by rejection sampling.
    let mut order: Vec<usize> = (0..FURNITURE.len()).collect();
    for i in (1..order.len()).rev() {
        let j = rng.random_range(0..=i as u32) as usize;
        order.swap(i, j);
    }
    let count = rng.random_range(7..=11u32) as usize;
    let mut placed = 0;
    let mut chairs = 0;
    for &fi in order.iter().cycle().take(order.len() + 3) {
        if placed >= count {
            break;
        }
        let (cat, size, against_wall, base, material) = FURNITURE[fi];
        if cat == "chair" && chairs >= 3 {
            continue;
        }
        let size = V3::new(size[0], size[1], size[2]);
        let mut done = false;
        for _ in 0..40 {
            let (c, yaw) = if against_wall {
                let k = rng.random_range(0..4u32);
                let t = uniform(rng, size.x / 2.0 + 0.1, wall_len(k) - size.x / 2.0 - 0.1);
                wall_place(k, t, size.y)
            } else {
                (
                    V3::new(uniform(rng, 0.6, w - 0.6), uniform(rng, 0.6, d - 0.6), 0.0),
                    uniform(rng, 0.0, std::f32::consts::PI),
                )
            };
            let center = V3::new(c.x, c.y, base + size.z / 2.0);
            // Keep the door's swing clear and leave walking space.
            if b.overlaps(center, size, yaw, 0.35) {
                continue;
            }
            let color = match material {
                Material::Wood => pick_color(rng, &[5, 3, 2, 8]),
                Material::Fabric => pick_color(rng, &[0, 1, 4, 7, 3, 11]),
                Material::Metal => pick_color(rng, &[1, 2, 8]),
                Material::Screen if cat == "picture" => pick_color(rng, &[5, 6, 8, 2]),
                Material::Screen => ("black", [30, 30, 34]),
                Material::Foliage => ("green", [60, 120, 56]),
                _ => pick_color(rng, &[1]),
            };
            b.push(Spec {
                name: cat.to_string(),
                category: cat,
                color,
                center,
                size,
                yaw,
                material,
            });
            done = true;
            break;
        }
        if done {
            placed += 1;
            if cat == "chair" {
                chairs += 1;
            }
        }
    }
    // Repeated categories (chairs) get numbered names.
    let cats: Vec<String> = b.objects.iter().map(|o| o.category.clone()).collect();
    for (i, cat) in cats.iter().enumerate() {
        let n = cats.iter().filter(|c| *c == cat).count();
        if n > 1 {
            let k = cats[..=i].iter().filter(|c| *c == cat).count();
            b.objects[i].name = format!("{cat} {k}");
        }
    }
    (
        V3::new(0.25, 0.25, 0.3),
        V3::new(w - 0.25, d - 0.25, h - 0.3),
        Some(w * d),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenes_are_seeded_and_sane() {
        for kind in [SceneKind::City, SceneKind::Indoor] {
            for idx in 0..8 {
                let a = Scene::generate(kind, 42, idx);
                let b = Scene::generate(kind, 42, idx);
                assert_eq!(a, b);
                assert_ne!(a, Scene::generate(kind, 43, idx));
                for (i, o) in a.objects.iter().enumerate() {
                    assert_eq!(usize::from(o.id), i + 1);
                    assert!(o.size.x > 0.0 && o.size.y > 0.0 && o.size.z > 0.0);
                }
                let names: std::collections::HashSet<_> =
                    a.askable().map(|o| o.name.as_str()).collect();
                assert_eq!(
                    names.len(),
                    a.askable().count(),
                    "names unique in {}",
                    a.name
                );
                match kind {
                    SceneKind::City => {
                        for want in ["tower", "bridge"] {
                            assert!(a.by_name(want).is_some());
                        }
                        assert!(a.objects.iter().any(|o| o.category == "balcony"));
                    }
                    SceneKind::Indoor => {
                        assert!(a.by_name("door").is_some() && a.by_name("window").is_some());
                        assert!(a.askable().count() >= 6, "{}", a.askable().count());
                        assert!(a.floor_area.is_some());
                    }
                }
            }
        }
    }

    #[test]
    fn closest_point_and_blocking() {
        let s = Scene::generate(SceneKind::Indoor, 1, 0);
        let o = s.by_name("door").unwrap();
        assert_eq!(o.distance_to(o.center), 0.0);
        let far = o.center + V3::new(0.0, 0.0, 10.0);
        assert!((o.distance_to(far) - (10.0 - o.size.z / 2.0)).abs() < 1e-4);
        assert!(o.blocks(o.center, 0.0));
    }
}
