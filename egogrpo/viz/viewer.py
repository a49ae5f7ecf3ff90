"""A browser viewer of recovered motion, built with viser (the optional "viewer" extra).

The scene is in the recording's MPS world (z up, metres):
    /floor        a grid at floor_z under the whole motion (cells GRID_M, sections 1 m)
    /head_path    the head (CPF) trajectory, a polyline of line segments
    /head         the CPF of the current frame, as axes (x left, y up, z forward)
    /skeleton     the 22-joint skeleton of the current frame and sample, one segment per bone
                  (the body's left side blue, right side red)
    /point_cloud  the recording's MPS semidense points (confident ones, at most MAX_POINTS), if found
GUI: play/pause, frame slider, speed, sample selector (S > 1), visibility of the head path and points.

`build_scene` and the `ViewerScene` methods hold all the logic and run without a browser; `serve`
adds the server, the playback thread and the blocking loop.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from egogrpo.body.topology import BODY_JOINT_NAMES, BODY_PARENTS
from egogrpo.errors import EgogrpoError
from egogrpo.viz.motion_file import RecoveredView

if TYPE_CHECKING:
    import viser

MAX_POINTS = 200_000  # most point-cloud points sent to the browser
GRID_M = 0.5  # floor grid cell, metres
GRID_MARGIN_M = 2.0  # floor grid beyond the motion's extent, metres

#: Bones as (parent, child) joint indices, (21, 2), in child order.
BONES = np.array([(parent, child) for child, parent in enumerate(BODY_PARENTS) if parent >= 0])

LEFT_RGB = (40, 100, 210)
RIGHT_RGB = (205, 55, 45)
CENTER_RGB = (60, 60, 60)
HEAD_PATH_RGB = (40, 160, 90)


def import_viser() -> ModuleType:
    """The viser module, or an EgogrpoError saying how to install it."""
    try:
        import viser
    except ImportError as e:
        raise EgogrpoError(f"the viewer needs viser ({e}); install it with: pip install 'egogrpo[viewer]'") from None
    return viser


def bone_segments(joints: np.ndarray) -> np.ndarray:
    """(21, 2, 3) float32 bone end points (parent, child) of one frame's (22, 3) joints."""
    return np.asarray(joints, dtype=np.float32)[BONES]


def bone_colors() -> np.ndarray:
    """(21, 2, 3) uint8 colour of each bone end: by the side the child joint's name says."""
    colors = []
    for child in BONES[:, 1]:
        name = BODY_JOINT_NAMES[child]
        colors.append(LEFT_RGB if name.startswith("left") else RIGHT_RGB if name.startswith("right") else CENTER_RGB)
    return np.repeat(np.array(colors, dtype=np.uint8)[:, None, :], 2, axis=1)


def path_segments(points: np.ndarray) -> np.ndarray:
    """(max(N − 1, 1), 2, 3) float32 segments joining consecutive (N, 3) points (one point: a dot)."""
    points = np.asarray(points, dtype=np.float32)
    if len(points) == 1:
        return np.stack([points, points], axis=1)
    return np.stack([points[:-1], points[1:]], axis=1)


def floor_extent(view: RecoveredView) -> tuple[np.ndarray, float, float]:
    """Centre (x, y, floor_z) and width, height (metres) of a floor grid under all joints and the head path."""
    xy = np.concatenate([view.joints[..., :2].reshape(-1, 2), view.cpf_positions[:, :2]])
    low, high = xy.min(axis=0) - GRID_MARGIN_M, xy.max(axis=0) + GRID_MARGIN_M
    low, high = np.floor(low / GRID_M) * GRID_M, np.ceil(high / GRID_M) * GRID_M
    center = np.array([(low[0] + high[0]) / 2, (low[1] + high[1]) / 2, view.floor_z])
    return center, float(high[0] - low[0]), float(high[1] - low[1])


def load_point_cloud(path: Path, max_points: int = MAX_POINTS, seed: int = 0) -> np.ndarray:
    """(N ≤ max_points, 3) float32 confident world points of an MPS semidense point cloud.

    Confident: inverse-depth std and depth std below POINT_CONFIDENCE_RELAXED (EgoAllo's viewer uses
    the same). Beyond max_points a seeded random subset is kept. Read with projectaria-tools; an
    EgogrpoError names the file if it is missing or cannot be read.
    """
    from egogrpo.data.projectaria_console import console_output_captured
    from egogrpo.recover.aria import POINT_CONFIDENCE_RELAXED

    try:
        from projectaria_tools.core import mps
    except ImportError as e:
        raise EgogrpoError(f"{path}: reading the point cloud needs projectaria-tools ({e})") from None
    if not path.is_file():
        raise EgogrpoError(f"{path}: no such point cloud file")
    with console_output_captured():
        points = mps.read_global_point_cloud(str(path))
    if not points:
        raise EgogrpoError(f"{path}: not a readable MPS point cloud (projectaria-tools read no points)")
    positions = np.array([p.position_world for p in points], dtype=np.float64).reshape(-1, 3)
    inv_dist_std = np.array([p.inverse_distance_std for p in points], dtype=np.float64)
    dist_std = np.array([p.distance_std for p in points], dtype=np.float64)
    confident = (inv_dist_std < POINT_CONFIDENCE_RELAXED[0]) & (dist_std < POINT_CONFIDENCE_RELAXED[1])
    positions = positions[confident & np.isfinite(positions).all(axis=1)]
    if len(positions) > max_points:
        keep = np.random.default_rng(seed).choice(len(positions), size=max_points, replace=False)
        positions = positions[np.sort(keep)]
    return positions.astype(np.float32)


def point_colors(points: np.ndarray, floor_z: float) -> np.ndarray:
    """(N, 3) uint8 greys by height above the floor: darker low, lighter high (0 to 2.5 m)."""
    height = np.clip((points[:, 2] - floor_z) / 2.5, 0.0, 1.0)
    grey = (90 + 130 * height).astype(np.uint8)
    return np.repeat(grey[:, None], 3, axis=1)


@dataclass
class ViewerScene:
    """The scene and GUI handles of one viewer, and its playback state."""

    server: viser.ViserServer
    view: RecoveredView
    skeleton: Any  # LineSegmentsHandle
    head: Any  # FrameHandle
    head_path: Any  # LineSegmentsHandle
    floor: Any  # GridHandle
    point_cloud: Any | None  # PointCloudHandle, or None without a point cloud
    frame_slider: Any
    play_checkbox: Any
    speed_slider: Any
    sample_dropdown: Any | None  # only with several samples
    time_text: Any
    notes: list[str] = field(default_factory=list)
    sample: int = 0
    playhead: float = 0.0  # fractional frame of the playback
    lock: threading.Lock = field(default_factory=threading.Lock)

    def show(self) -> None:
        """Draw the slider's frame of the current sample (skeleton, head axes, time readout)."""
        with self.lock:
            frame = min(int(self.frame_slider.value), self.view.num_frames - 1)  # one frame: the slider spans 0–1
            T_world_cpf = self.view.T_world_cpf[frame]
            with self.server.atomic():
                self.skeleton.points = bone_segments(self.view.joints[self.sample, frame])
                self.head.wxyz = T_world_cpf[:4]
                self.head.position = T_world_cpf[4:]
            self.time_text.value = f"{self.view.times_s[frame]:.2f} s of {self.view.times_s[-1]:.2f} s"

    def set_sample(self, sample: int) -> None:
        """Switch to another sample (0 ≤ sample < S) and redraw."""
        self.view.sample_joints(sample)  # checks the index
        self.sample = sample
        self.show()

    def advance(self, seconds: float) -> None:
        """Move the playback on by `seconds` of real time × speed, wrapping at the end; redraws."""
        if int(self.frame_slider.value) != int(self.playhead):  # the slider was moved by hand
            self.playhead = float(self.frame_slider.value)
        step = seconds * float(self.speed_slider.value) * self.view.fps
        self.playhead = (self.playhead + step) % self.view.num_frames
        self.frame_slider.value = int(self.playhead)  # its callback redraws


def build_scene(
    server: viser.ViserServer, view: RecoveredView, point_cloud: bool = True, sample: int = 0
) -> ViewerScene:
    """Add the scene nodes and GUI of the module docstring to `server`; shows frame 0 of `sample`.

    A point cloud that is absent or unreadable is skipped with a line in `notes`.
    """
    view.sample_joints(sample)  # checks the index
    scene_api, gui = server.scene, server.gui
    scene_api.set_up_direction("+z")

    center, width, height = floor_extent(view)
    floor = scene_api.add_grid(
        "/floor", width=width, height=height, plane="xy", cell_size=GRID_M, section_size=1.0, position=center
    )
    head_path = scene_api.add_line_segments(
        "/head_path", path_segments(view.cpf_positions), HEAD_PATH_RGB, thickness=3.0, thickness_units="screen"
    )
    head = scene_api.add_frame("/head", axes_length=0.12, axes_radius=0.006)
    skeleton = scene_api.add_line_segments(
        "/skeleton", bone_segments(view.joints[sample, 0]), bone_colors(), thickness=0.025
    )

    notes: list[str] = []
    cloud = None
    if not point_cloud:
        notes.append("point cloud not shown (turned off)")
    elif view.point_cloud is None:
        notes.append(
            f"no point cloud shown: no MPS semidense points found beside the trajectory "
            f"({view.metadata.get('trajectory') or 'not named in the metadata'})"
        )
    else:
        try:
            points = load_point_cloud(view.point_cloud)
        except EgogrpoError as e:
            notes.append(f"no point cloud shown: {e}")
        else:
            cloud = scene_api.add_point_cloud(
                "/point_cloud", points, point_colors(points, view.floor_z), point_size=0.015, precision="float32"
            )
            notes.append(f"point cloud: {len(points):,} confident points from {view.point_cloud}")

    with gui.add_folder("Playback"):
        play = gui.add_checkbox("Play", initial_value=True)
        frame_slider = gui.add_slider("Frame", min=0, max=max(view.num_frames - 1, 1), step=1, initial_value=0)
        speed = gui.add_slider("Speed", min=0.1, max=4.0, step=0.1, initial_value=1.0)
        time_text = gui.add_text("Time", initial_value="", disabled=True)
        dropdown = None
        if view.num_samples > 1:
            options = [str(s) for s in range(view.num_samples)]
            dropdown = gui.add_dropdown("Sample", options, initial_value=str(sample))
    with gui.add_folder("Show"):
        show_path = gui.add_checkbox("Head path", initial_value=True)
        show_points = gui.add_checkbox("Point cloud", initial_value=cloud is not None, disabled=cloud is None)

    scene = ViewerScene(
        server=server,
        view=view,
        skeleton=skeleton,
        head=head,
        head_path=head_path,
        floor=floor,
        point_cloud=cloud,
        frame_slider=frame_slider,
        play_checkbox=play,
        speed_slider=speed,
        sample_dropdown=dropdown,
        time_text=time_text,
        notes=notes,
        sample=sample,
    )
    frame_slider.on_update(lambda _: scene.show())
    if dropdown is not None:
        dropdown.on_update(lambda _: scene.set_sample(int(dropdown.value)))
    show_path.on_update(lambda _: setattr(head_path, "visible", show_path.value))
    if cloud is not None:
        show_points.on_update(lambda _: setattr(cloud, "visible", show_points.value))

    @server.on_client_connect
    def _(client: Any) -> None:  # start each browser looking at the body from the side, a few metres off
        pelvis = view.joints[scene.sample, int(frame_slider.value), 0]
        client.camera.look_at = pelvis
        client.camera.position = pelvis + np.array([-3.0, -3.0, 1.5])

    scene.show()
    return scene


def _play(scene: ViewerScene, stop: threading.Event) -> None:
    """Playback loop: advance at the frame rate while Play is ticked and a browser is connected."""
    period = 1.0 / min(scene.view.fps, 60.0)
    last = time.monotonic()
    while not stop.wait(period):
        now = time.monotonic()
        if scene.play_checkbox.value and scene.server.get_clients():
            scene.advance(now - last)
        last = now


def check_host(host: str) -> None:
    """EgogrpoError unless this machine can listen on `host` (a name or address of one of its interfaces)."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address[0], 0))
    except OSError as e:  # including socket.gaierror: an unknown name
        raise EgogrpoError(f"--host {host}: cannot serve on this address ({e.strerror or e})") from None


def serve(
    view: RecoveredView,
    port: int = 8080,
    host: str = "127.0.0.1",
    point_cloud: bool = True,
    block: bool = True,
    *,
    sample: int = 0,
    log: Callable[[str], None] = print,
) -> viser.ViserServer:
    """Serve the viewer at http://host:port (the next free port if taken); returns the server.

    `log` receives the notes and the URL. With block=True, runs until Ctrl-C and then stops the
    server. With block=False it returns at once; the caller stops the server (`server.stop()`), and
    the playback thread (a daemon) idles once no browser is connected.
    """
    if type(port) is not int or not 0 < port < 65536:
        raise EgogrpoError(f"--port must be a port number from 1 to 65535, got {port}")
    check_host(host)
    view.sample_joints(sample)  # a bad sample index is refused before a server starts
    viser_module = import_viser()
    with contextlib.redirect_stdout(io.StringIO()):  # viser prints its own banner; `log` gets the URL below
        server = viser_module.ViserServer(host=host, port=port, verbose=False)
    try:
        scene = build_scene(server, view, point_cloud=point_cloud, sample=sample)
    except BaseException:
        server.stop()
        raise
    for note in scene.notes:
        log(f"note: {note}")
    shown_host = "localhost" if host in ("0.0.0.0", "::") else host
    log(f"viewer at http://{shown_host}:{server.get_port()} (Ctrl-C to stop)")
    stop = threading.Event()
    threading.Thread(target=_play, args=(scene, stop), name="egogrpo-view-playback", daemon=True).start()
    if not block:
        return server
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.stop()
    return server
