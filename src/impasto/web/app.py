"""The studio page: Gradio Blocks on a Studio (see jobs.py), and how it is served.

One network for the process, one run at a time (others wait in Gradio's queue and see their
place), a preview about once a second, Stop that keeps the image, and a PNG download that
carries its settings. Every ImpastoError becomes a readable message in the page.
"""

from __future__ import annotations

import functools
import html
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..config import StyleConfig
from ..errors import ImpastoError
from ..vgg import VGG
from . import controls, jobs, require_gradio

if TYPE_CHECKING:
    import gradio as gr
else:
    gr = require_gradio()  # this module is the page; importing it without Gradio says what to install

TITLE = "impasto studio"
MAX_FILE_SIZE = "25MB"  # largest upload the server accepts
LOSS_COLOURS = {"total": "#222222", "content": "#1f77b4", "style": "#dd2e44", "tv": "#e8a317"}
PLOT_POINTS = 200  # iterations drawn in the loss plot, at most
QUEUE_SIZE = 16  # jobs that may wait; more are turned away with a message
UPLOAD_SOURCES: tuple[Literal["upload", "clipboard"], ...] = ("upload", "clipboard")
CSS = """
#status { min-height: 2.2em; }
#painting img { width: 100%; height: 100%; object-fit: contain; }
#legend .swatch { display: inline-block; width: 0.9em; height: 0.9em; border-radius: 2px;
                  margin-right: 0.3em; vertical-align: -0.1em; }
#legend p { margin: 0.15em 0; }
"""
INTRO = (
    "**impasto studio** — paint a photo in the style of one or more artworks. "
    "Upload a content photo and a style, paint where each style goes if you like, then **Run**. "
    "The picture forms on the right; **Stop** keeps it as it is."
)


class UploadImage(gr.Image):
    """gr.Image, except that an upload reaches the handler undecoded, as a path.

    Gradio's own Image opens the file first, so a file that is not an image, or a decompression
    bomb, would fail there with Gradio's message; impasto reads it instead and says what is wrong.
    """

    def preprocess(self, payload: Any) -> str | None:
        if payload is None or payload.path is None:
            path = super().preprocess(payload)  # pasted data: Gradio writes it to a file
            assert path is None or isinstance(path, str)  # type="filepath": a path, not an array or image
            return path
        return str(payload.path)

    def get_block_name(self) -> str:
        return "image"  # drawn by the page as an ordinary image upload


def _layers(editor: dict | None) -> list[np.ndarray]:
    editor = editor or {}
    return jobs.picture_layers(editor.get("layers") or [], editor.get("background"))


def create_app(
    network: VGG | None = None,
    *,
    base: StyleConfig | None = None,
    folder: str | Path | None = None,
    preview_every: float = 1.0,
    weights_sha256: str | None = None,
) -> Any:
    """The page, as Gradio Blocks (not yet served; see `launch`).

    `network` is shared by every job (default: the VGG that `base` names, loaded now); `base`
    holds the options the page does not show, which are fixed for the process (device, weights,
    pooling); results are written under `folder` (default: the system's temporary folder).
    """
    base = base or StyleConfig()
    if network is None:
        from ..engine import build_network, resolve_device

        network = build_network(base, resolve_device(base.device))
    studio = jobs.Studio(network, folder, preview_every=preview_every, weights_sha256=weights_sha256)
    base = base.replace(device=studio.device)
    blocks = _Page(studio, base).blocks
    blocks.impasto_results = studio.folder  # launch lets Gradio serve the downloads from here
    return blocks


def launch(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    max_file_size: str | int = MAX_FILE_SIZE,
    block: bool = True,
    quiet: bool = False,
) -> str:
    """Serve the page on host:port, never through a public share link; returns its address."""
    try:
        app.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1).launch(
            server_name=host,
            server_port=port,
            share=False,
            max_file_size=max_file_size,
            show_error=True,
            prevent_thread_lock=not block,
            quiet=quiet,
            inbrowser=False,
            ssr_mode=False,
            mcp_server=False,
            enable_monitoring=False,
            pwa=False,
            footer_links=["api", "settings"],
            css=CSS,
            allowed_paths=[str(app.impasto_results)] if hasattr(app, "impasto_results") else None,
        )
    except OSError as error:
        reason = "the port is in use" if "empty port" in str(error) else str(error).splitlines()[0]
        raise ImpastoError(f"cannot serve on {host}:{port} ({reason}); choose another port") from None
    return app.local_url


def _readable(fn: Callable) -> Callable:
    """The handler, with every ImpastoError shown in the page in the page's words."""

    @functools.wraps(fn)
    def handler(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ImpastoError as error:
            raise gr.Error(controls.to_labels(str(error)), title="Cannot do that", print_exception=False) from None

    return handler


class _Page:
    """The widgets and their events. Built once per app; handlers are its methods."""

    def __init__(self, studio: jobs.Studio, base: StyleConfig) -> None:
        self.studio, self.base = studio, base
        self.switches = jobs.StopSwitches()
        self.layer_names = [n for n in studio.network.layer_names if not n.startswith("pool")]
        with gr.Blocks(title=TITLE, analytics_enabled=False) as self.blocks:
            gr.Markdown(INTRO)
            with gr.Row(equal_height=False):
                with gr.Column(scale=5):
                    self._inputs()
                    self._regions()
                with gr.Column(scale=6):
                    self._outputs()
                    self._options()
            self._events()

    # --- layout --------------------------------------------------------------------------------

    def _inputs(self) -> None:
        self.content = UploadImage(
            label="Content photo", type="filepath", sources=list(UPLOAD_SOURCES), height=260, elem_id="content"
        )
        self.style_count = gr.State(1)
        self.tabs, self.styles, self.weights, self.masks, self.mask_uploads = [], [], [], [], []
        with gr.Tabs():
            for i, colour in enumerate(jobs.STYLE_COLOURS, start=1):
                with gr.Tab(f"Style {i}", visible=i == 1, id=f"style-tab-{i}") as tab:
                    with gr.Row(equal_height=False):
                        self.styles.append(
                            UploadImage(
                                label=f"Style {i}",
                                type="filepath",
                                sources=list(UPLOAD_SOURCES),
                                height=200,
                                elem_id=f"style-{i}",
                            )
                        )
                        with gr.Column():
                            self.weights.append(
                                gr.Slider(
                                    0,
                                    1,
                                    value=1,
                                    step=0.05,
                                    elem_id=f"weight-{i}",
                                    label=controls.label("style_blend").capitalize(),
                                    info=controls.hint("style_blend"),
                                )
                            )
                            self.mask_uploads.append(
                                gr.UploadButton(
                                    "Upload a mask (white = this style)",
                                    file_types=["image"],
                                    size="sm",
                                    elem_id=f"mask-upload-{i}",
                                )
                            )
                    self.masks.append(
                        gr.ImageMask(
                            label=f"Paint where style {i} goes (nothing painted: everywhere)",
                            sources=(),
                            transforms=(),
                            layers=False,
                            type="numpy",
                            height=300,
                            elem_id=f"mask-{i}",
                            brush=gr.Brush(colors=[(colour, jobs.MASK_OPACITY)], color_mode="fixed"),
                            eraser=gr.Eraser(),
                        )
                    )
                self.tabs.append(tab)
        self.add_style = gr.Button("+ Add a style", size="sm", elem_id="add-style")

    def _options(self) -> None:
        names = self.layer_names
        self.options: dict[str, Any] = {}
        with gr.Group():
            with gr.Row():
                for name in ("size", "iterations"):
                    self.options[name] = controls.build(gr, name, names)
            with gr.Row():
                self.options["style_weight"] = controls.build(gr, "style_weight", names)
                self.options["seed"] = controls.build(gr, "seed", names)
            with gr.Row():
                self.preset = gr.Radio(
                    list(controls.PRESETS),
                    value="Gatys et al.",
                    label="Preset",
                    info="Novak & Nikulin: geometric layer weights, all conv layers, "
                    "activation shift -1, correlation chain",
                    elem_id="preset",
                )
                self.options["preserve_color"] = controls.build(gr, "preserve_color", names)
        with gr.Accordion("Advanced", open=False, elem_id="advanced"):
            for start in range(0, len(controls.ADVANCED), 2):
                with gr.Row():
                    for name in controls.ADVANCED[start : start + 2]:
                        self.options[name] = controls.build(gr, name, names)
            gr.Markdown(f"Set when the server starts: {self._server_line()}.")

    def _server_line(self) -> str:
        b = self.base
        threads = f"{b.threads} CPU threads" if b.threads else "a CPU thread per core"
        return (
            f"network {self.studio.network.arch.upper()} ({b.weights or 'default weights'}), "
            f"{b.pooling} pooling, device {b.device}, {threads} (`impasto web --help` says how)"
        )

    def _outputs(self) -> None:
        self.painting = gr.Image(
            label="Painting", interactive=False, format="png", height=420, elem_id="painting", buttons=["fullscreen"]
        )
        self.status = gr.Markdown("Upload a content photo and a style, then press **Run**.", elem_id="status")
        with gr.Row():
            self.run_button = gr.Button("Run", variant="primary", elem_id="run")
            self.stop_button = gr.Button("Stop", variant="stop", elem_id="stop")
            self.download = gr.DownloadButton("Download PNG", interactive=False, elem_id="download")
        self.mask_files = gr.File(
            label="Painted masks: keep them beside the PNG, for impasto reproduce",
            file_count="multiple",
            interactive=False,
            visible=False,
            elem_id="masks",
        )
        # No label above the plot: with one, Gradio's fixed height cuts off the legend.
        self.plot = gr.LinePlot(
            x="iteration",
            y="log10 loss",
            color="term",
            label="Loss",
            show_label=False,
            height=250,
            x_title="iteration",
            y_title="loss (log10)",
            color_title="",
            elem_id="loss",
            color_map=LOSS_COLOURS,
        )
        self.ticket = gr.State(None)

    def _regions(self) -> None:
        self.regions = gr.Image(
            label="Which style goes where", interactive=False, height=200, format="png", elem_id="regions", buttons=[]
        )
        self.legend = gr.HTML(elem_id="legend")

    # --- events --------------------------------------------------------------------------------

    def _events(self) -> None:
        region_inputs = [self.content, *self.styles, *self.masks]
        helper: dict[str, Any] = dict(api_visibility="undocumented")  # callable, but not advertised in the API page
        self.content.change(
            _readable(self.new_content), [self.content, self.style_count], self.masks, api_name="content", **helper
        )
        for i, (style, upload) in enumerate(zip(self.styles, self.mask_uploads), start=1):
            style.upload(
                _readable(functools.partial(self.check_style, i)), style, None, api_name=f"check_style_{i}", **helper
            )
            upload.upload(
                _readable(functools.partial(self.load_mask, i)),
                [upload, self.content],
                self.masks[i - 1],
                api_name=f"load_mask_{i}",
                **helper,
            )
        for trigger in (self.content.change, *(s.change for s in self.styles), *(m.change for m in self.masks)):
            trigger(
                self.show_regions,
                region_inputs,
                [self.regions, self.legend],
                api_visibility="private",
                concurrency_limit=None,
                show_progress="hidden",
            )
        self.add_style.click(
            self.more_styles,
            [self.style_count, self.content],
            [self.style_count, *self.tabs, self.add_style, *self.masks],
            api_visibility="private",
            concurrency_limit=None,
        )
        self.preset.change(
            self.apply_preset,
            self.preset,
            [self.options[n] for n in controls.IMPROVED],
            api_visibility="private",
            concurrency_limit=None,
        )
        kwargs = {"content": self.content, "ticket": self.ticket, **self.options}
        for i in range(len(self.styles)):
            kwargs.update(
                {f"style_{i + 1}": self.styles[i], f"weight_{i + 1}": self.weights[i], f"mask_{i + 1}": self.masks[i]}
            )
        # Arm the Stop switch first, so a Stop pressed while the job waits in the queue counts.
        armed = self.run_button.click(
            self.arm, None, [self.ticket, self.status], api_visibility="private", concurrency_limit=None
        )
        armed.then(
            self._paint_handler(kwargs),
            inputs_kwargs=kwargs,
            outputs=[self.painting, self.status, self.plot, self.download, self.mask_files],
            api_name="paint",
            concurrency_limit=1,
            concurrency_id="paint",
            show_progress_on=[self.painting],
        )
        self.stop_button.click(self.stop, None, self.status, api_name="stop", concurrency_limit=None)

    def _paint_handler(self, inputs: dict[str, Any]) -> Callable:
        """`paint`, presented to Gradio (and so to API clients) with one keyword per input.

        Inputs that may be left out (the content and the first style may not) default to None,
        which a client then need not send; the others default to the widget's value.
        """

        def paint(request: gr.Request, **values: Any) -> Iterator[list[Any]]:
            yield from self.paint(request, **values)

        required = ("content", "style_1")
        optional = {n for n in inputs if n not in required and getattr(inputs[n], "value", None) is None}
        keyword = inspect.Parameter.KEYWORD_ONLY
        paint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]  # typeshed lacks __signature__
            [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request)]
            + [
                inspect.Parameter(n, keyword, default=None if n in optional else inspect.Parameter.empty)
                for n in inputs
            ]
        )
        paint.__annotations__ = {"request": gr.Request}
        paint.__doc__ = self.paint.__doc__
        return paint

    # --- handlers ------------------------------------------------------------------------------

    def new_content(self, path: str | None, count: int) -> list[Any]:
        """The shown styles' mask editors show the new content, with nothing painted.

        Hidden editors stay empty until their style is added: the browser sends every editor's
        picture with each event, so an empty one costs nothing.
        """
        editor = self._blank_editor(path)
        return [editor if i < count else None for i in range(len(self.masks))]

    def _blank_editor(self, path: str | None) -> dict | None:
        if not path:
            return None
        return {
            "background": jobs.editor_background(jobs.read_upload(path, "content image")),
            "layers": [],
            "composite": None,
        }

    def check_style(self, index: int, path: str | None) -> None:
        if path:
            jobs.read_upload(path, f"style image {index}")

    def load_mask(self, index: int, file: Any, content: str | None) -> dict:
        """An uploaded mask, shown in the style's editor as if painted (it can be touched up)."""
        if not content:
            raise ImpastoError("upload the content photo first; a mask marks areas of it")
        mask = jobs.read_mask_upload(str(getattr(file, "name", file)), f"style mask {index}")
        if np.asarray(mask).max() < 128:  # in the editor, nothing marked would mean everywhere
            raise ImpastoError(
                f"style mask {index} is all black, so it marks no area; upload one that is white where the style goes"
            )
        photo = jobs.read_upload(content, "content image")
        jobs.check_mask_shape(mask, photo.size, f"style mask {index}")
        background = jobs.editor_background(photo)
        layer = jobs.mask_layer(mask, background, jobs.STYLE_COLOURS[index - 1])
        return {"background": background, "layers": [layer], "composite": None}

    def show_regions(self, content: str | None, *rest: Any) -> tuple[Any, str]:
        styles, editors = rest[: len(self.styles)], rest[len(self.styles) :]
        used = [i for i, s in enumerate(styles) if s]
        try:
            photo = jobs.read_upload(content, "content image") if content else None
        except ImpastoError:
            photo = None
        if photo is None or not used:
            return None, ""
        masks = [jobs.painted_mask(_layers(editors[i])) for i in used]
        return jobs.regions(photo, masks), _legend(used, masks, [styles[i] for i in used])

    def more_styles(self, count: int, content: str | None) -> list[Any]:
        """One more style tab, its editor showing the content."""
        count = min(count + 1, len(self.tabs))
        try:
            editor = self._blank_editor(content)
        except ImpastoError:
            editor = None
        return [
            count,
            *(gr.Tab(visible=i < count) for i in range(len(self.tabs))),
            gr.Button(visible=count < len(self.tabs)),
            *(editor if i == count - 1 else gr.skip() for i in range(len(self.masks))),
        ]

    def apply_preset(self, preset: str) -> list[Any]:
        return [controls.PRESETS[preset][name] for name in controls.IMPROVED]

    def arm(self, request: gr.Request) -> tuple[str, str]:
        """A Stop switch for the run about to be queued, and a status line for while it waits."""
        return self.switches.arm(request.session_hash), "Waiting for its turn (one run at a time)…"

    def stop(self, request: gr.Request) -> Any:
        """Stop this browser's run; it keeps the image it has. The status line says so at once."""
        state = self.switches.stop(request.session_hash)
        if state == "waiting":
            return "Stopped while waiting for its turn: this run will not start."
        if state == "running":
            return "Stopping at the end of this step…"
        return gr.skip()

    def job(self, values: dict[str, Any]) -> jobs.Job:
        """The job the page's values describe."""
        styles = []
        for i in range(1, len(self.styles) + 1):
            path, weight, editor = values.pop(f"style_{i}"), values.pop(f"weight_{i}"), values.pop(f"mask_{i}")
            if path:
                mask = jobs.painted_mask(_layers(editor))
                styles.append(jobs.StyleInput(path, float(weight if weight is not None else 1), mask))
        content = values.pop("content")
        if not content:
            raise ImpastoError("no content photo yet; upload one first")
        return jobs.Job(content, styles, controls.config_from_values(values, self.base))

    def paint(self, request: gr.Request, **values: Any) -> Iterator[list[Any]]:
        """Frames of this browser's job, each as [painting, status, loss plot, download, masks]."""
        session = request.session_hash
        stop = self.switches.take(session, values.pop("ticket", None))
        try:
            job = self.job(values)
            for frame in self.studio.paint(job, stop):
                picture = frame.image if frame.image is not None else frame.preview
                yield [
                    gr.skip() if picture is None else picture,
                    frame.status,
                    _plot(frame.history),
                    gr.DownloadButton(
                        value=None if frame.download is None else str(frame.download),
                        interactive=frame.download is not None,
                    ),
                    gr.File(value=[str(m) for m in frame.masks] or None, visible=bool(frame.masks)),
                ]
        except ImpastoError as error:
            message = controls.to_labels(str(error))
            yield [gr.skip(), f"Cannot paint: {message}", gr.skip(), gr.skip(), gr.skip()]
            raise gr.Error(message, title="Cannot paint", print_exception=False) from None
        finally:
            self.switches.forget(session, stop)


def _plot(history: list[dict[str, float]], points: int = PLOT_POINTS) -> Any | None:
    """The loss terms by iteration, at most `points` iterations of them (the page redraws it often)."""
    import pandas as pd

    if len(history) < 2:
        return None  # not a line yet (one point draws no line, only an odd tick)
    stride = max(1, -(-len(history) // points))
    kept = sorted({*range(0, len(history), stride), len(history) - 1})
    rows = [(i + 1, term, float(np.log10(max(value, 1e-30)))) for i in kept for term, value in history[i].items()]
    return pd.DataFrame(rows, columns=["iteration", "term", "log10 loss"])


def _legend(used: list[int], masks: list[Any], paths: list[str]) -> str:
    lines = []
    for i, mask, path in zip(used, masks, paths):
        where = "everywhere" if mask is None else f"{np.asarray(mask).mean() / 2.55:.0f} % of the photo"
        colour = jobs.STYLE_COLOURS[i]
        lines.append(
            f'<p><span class="swatch" style="background:{colour}"></span>'
            f"Style {i + 1} ({html.escape(Path(path).name)}): {where}</p>"
        )
    if any(m is not None for m in masks):
        lines.append('<p><span class="swatch" style="background:#999"></span>grey: no style, the photo stays</p>')
    return "".join(lines)
