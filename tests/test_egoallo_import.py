"""Importing EgoAllo's release format, and egogrpo's own checkpoint folder: round trips and bad input.

The EgoAllo state dict is built here from the key names and shapes written in reference/egoallo.md §11
(not from our module), so a mismatch with EgoAllo's naming would fail the import.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from egogrpo.config import DenoiserConfig
from egogrpo.errors import EgogrpoError
from egogrpo.fileio import sha256_of_file
from egogrpo.model.checkpoint import load_checkpoint, save_checkpoint
from egogrpo.model.denoiser import EgoDenoiser
from egogrpo.model.egoallo_import import import_egoallo

#: EgoAllo's config fields for a small model (every field present, as PyYAML dumps the dataclass).
FIELDS = {
    "activation": "gelu",
    "cond_param": "ours",
    "d_feedforward": 48,
    "d_latent": 32,
    "d_noise_emb": 24,
    "decoder_layers": 2,
    "dropout_p": 0.0,
    "encoder_layers": 1,
    "fourier_enc_freqs": 3,
    "include_canonicalized_cpf_rotation_in_cond": True,
    "include_hand_positions_cond": False,
    "include_hands": True,
    "max_t": 1000,
    "noise_conditioning": "token",
    "num_heads": 4,
    "positional_encoding": "rope",
    "xattn_mode": "kv_from_cond_q_from_x",
}
TAG = "!!python/object:egoallo.network.EgoDenoiserConfig"


def egoallo_yaml(fields: dict[str, object], tag: str = TAG) -> str:
    """A model_config.yaml as PyYAML writes a dataclass: the tag, then one `key: value` per field."""
    lines = [tag]
    for key, value in sorted(fields.items()):
        lines.append(f"{key}: {str(value).lower() if isinstance(value, bool) else value}")
    return "\n".join(lines) + "\n"


def egoallo_state_dict(fields: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with EgoAllo's names and shapes (reference/egoallo.md §4 and §11)."""
    d, ff, dn = fields["d_latent"], fields["d_feedforward"], fields["d_noise_emb"]
    d_cond = 22 * (1 + 2 * fields["fourier_enc_freqs"])
    widths = {"betas": 16, "body_rotmats": 189, "contacts": 21, "hand_rotmats": 270}
    shapes: dict[str, tuple[int, ...]] = {}
    for name, width in widths.items():
        for i, (n_in, n_out) in zip((0, 2, 4), ((width, d), (d, d), (d, d)), strict=True):
            shapes[f"encoders.{name}.{i}.weight"], shapes[f"encoders.{name}.{i}.bias"] = (n_out, n_in), (n_out,)
        for i, (n_in, n_out) in zip((0, 3, 5), ((d, d), (d, d), (d, width)), strict=True):
            shapes[f"decoders.{name}.{i}.weight"], shapes[f"decoders.{name}.{i}.bias"] = (n_out, n_in), (n_out,)
        shapes[f"decoders.{name}.1.weight"] = shapes[f"decoders.{name}.1.bias"] = (d,)
    shapes |= {"latent_from_cond.weight": (d, d_cond), "latent_from_cond.bias": (d,)}
    shapes |= {"noise_emb.weight": (fields["max_t"], dn), "noise_emb_token_proj.weight": (d, dn)}
    for kind, count in (("encoder", fields["encoder_layers"]), ("decoder", fields["decoder_layers"])):
        for i in range(count):
            p = f"{kind}_layers.{i}."
            shapes |= {p + "sattn_qkv_proj.weight": (3 * d, d), p + "sattn_out_proj.weight": (d, d)}
            shapes |= {p + f"layernorm{k}.{w}": (d,) for k in (1, 2) for w in ("weight", "bias")}
            shapes |= {p + "rotary_emb.freqs": (d // fields["num_heads"] // 2,)}
            shapes |= {
                p + "mlp0.weight": (ff, d),
                p + "mlp0.bias": (ff,),
                p + "mlp1.weight": (d, ff),
                p + "mlp1.bias": (d,),
            }
            if kind == "decoder":
                shapes |= {p + "xattn_kv_proj.weight": (2 * d, d), p + "xattn_q_proj.weight": (d, d)}
                shapes |= {p + "xattn_layernorm.weight": (d,), p + "xattn_layernorm.bias": (d,)}
                shapes |= {p + "xattn_out_proj.weight": (d, d)}
    g = torch.Generator().manual_seed(seed)
    return {name: 0.2 * torch.randn(shape, generator=g) for name, shape in shapes.items()}


def write_release(root: Path, fields: dict = FIELDS, tensors: dict | None = None, step: int = 3_000_000) -> Path:
    root.mkdir(parents=True)
    (root / "model_config.yaml").write_text(egoallo_yaml(fields))
    (root / f"checkpoints_{step}").mkdir()
    save_file(
        tensors if tensors is not None else egoallo_state_dict(fields), root / f"checkpoints_{step}/model.safetensors"
    )
    return root


def _forward(model: EgoDenoiser, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 7, model.d_state, generator=g)
    cond = torch.randn(2, 7, model.d_cond, generator=g)
    with torch.no_grad():
        return model(x, torch.tensor([1, 640]), cond)


def test_import_reproduces_the_state_dict(tmp_path: Path) -> None:
    tensors = egoallo_state_dict(FIELDS)
    release = write_release(tmp_path / "egoallo", tensors=tensors)
    report = import_egoallo(release, tmp_path / "out")
    assert report.step == 3_000_000 and report.defaults_used == () and report.num_tensors == len(tensors)
    model, config, meta = load_checkpoint(tmp_path / "out")
    assert config.num_betas == 16 and config.d_latent == 32 and config.encoder_layers == 1
    assert meta["body_model_id"] == "smplh" and meta["extra"]["source"] == "egoallo"
    assert meta["extra"]["egoallo_step"] == 3_000_000

    direct = EgoDenoiser(config)
    direct.load_state_dict(tensors, strict=True)
    assert torch.equal(_forward(model), _forward(direct.eval()))
    for name, value in model.state_dict().items():
        assert torch.equal(value, tensors[name]), name


def test_import_locations_and_defaults(tmp_path: Path) -> None:
    partial = {k: v for k, v in FIELDS.items() if k != "include_hand_positions_cond"}  # an older EgoAllo config
    release = write_release(tmp_path / "egoallo", fields=partial, step=5000)
    (release / "checkpoints_100000").mkdir()  # a later step: the default choice
    save_file(egoallo_state_dict(FIELDS, seed=1), release / "checkpoints_100000/model.safetensors")
    report = import_egoallo(release, tmp_path / "a")
    assert report.step == 100_000 and report.defaults_used == ("include_hand_positions_cond",)
    assert import_egoallo(release / "checkpoints_5000", tmp_path / "b").step == 5000
    assert import_egoallo(release / "checkpoints_5000/model.safetensors", tmp_path / "c").step == 5000
    with pytest.raises(EgogrpoError, match="already holds a checkpoint"):
        import_egoallo(release, tmp_path / "a")
    import_egoallo(release, tmp_path / "a", overwrite=True)


def test_cli(tmp_path: Path, run_cli) -> None:
    release = write_release(tmp_path / "egoallo")
    result = run_cli("import-egoallo", str(release), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    assert "step 3000000" in result.stdout and (tmp_path / "out/model.safetensors").is_file()
    again = run_cli("import-egoallo", str(release), "--out", str(tmp_path / "out"))
    assert again.exit_code == 1 and "--overwrite" in again.stderr


def _import_error(tmp_path: Path, fields: dict = FIELDS, tensors: dict | None = None, yaml_text: str | None = None):
    release = write_release(tmp_path / "egoallo", fields=fields, tensors=tensors)
    if yaml_text is not None:
        (release / "model_config.yaml").write_text(yaml_text)
    with pytest.raises(EgogrpoError) as error:
        import_egoallo(release, tmp_path / "out")
    message = str(error.value)
    assert "\n" not in message
    assert not (tmp_path / "out/config.json").exists()
    return message


def test_refuses_other_python_tags(tmp_path: Path) -> None:
    message = _import_error(tmp_path, yaml_text='!!python/object/apply:os.system ["echo pwned"]\n')
    assert "model_config.yaml" in message and "python/object/apply:os.system" in message
    other = egoallo_yaml(FIELDS, tag="!!python/object:egoallo.network.SomethingElse")
    assert "SomethingElse" in _import_error(tmp_path / "2", yaml_text=other)
    nested = egoallo_yaml(FIELDS) + "extra: !!python/name:os.system ''\n"
    assert "python/name:os.system" in _import_error(tmp_path / "3", yaml_text=nested)


def test_refuses_unknown_fields_and_bad_values(tmp_path: Path) -> None:
    message = _import_error(tmp_path, fields={**FIELDS, "use_flash": True, "zeta": 1})
    assert "model_config.yaml" in message and "use_flash, zeta" in message
    message = _import_error(tmp_path / "2", fields={**FIELDS, "positional_encoding": "transformer"})
    assert "model_config.yaml" in message and "positional_encoding" in message


def test_derived_fields_are_accepted_when_they_agree(tmp_path: Path) -> None:
    # EgoAllo dumps its cached properties with the config once a model was built. By hand, for 3 Fourier
    # frequencies and hands: d_cond = 22·(1 + 2·3) = 154; d_state = 16 + 21·9 + 21 + 30·9 = 496.
    tensors = egoallo_state_dict(FIELDS)
    release = write_release(tmp_path / "egoallo", fields={**FIELDS, "d_cond": 154, "d_state": 496}, tensors=tensors)
    report = import_egoallo(release, tmp_path / "out")
    assert report.defaults_used == () and report.num_tensors == len(tensors)
    message = _import_error(tmp_path / "2", fields={**FIELDS, "d_cond": 153})
    assert "model_config.yaml: d_cond: 153 does not match the value the other fields give (154)" in message
    message = _import_error(tmp_path / "3", fields={**FIELDS, "d_state": 226})
    assert "d_state: 226 does not match the value the other fields give (496)" in message


def test_refuses_weights_that_do_not_match(tmp_path: Path) -> None:
    tensors = egoallo_state_dict(FIELDS)
    del tensors["decoder_layers.1.xattn_q_proj.weight"]
    message = _import_error(tmp_path, tensors=tensors)
    assert "model.safetensors" in message and "decoder_layers.1.xattn_q_proj.weight" in message

    tensors = egoallo_state_dict(FIELDS)
    tensors["encoder_layers.0.mlp0.weight"] = torch.zeros(64, 32)
    message = _import_error(tmp_path / "2", tensors=tensors)
    assert "encoder_layers.0.mlp0.weight is (64, 32), expected (48, 32)" in message

    tensors = {**egoallo_state_dict(FIELDS), "decoder_layers.2.mlp0.bias": torch.zeros(48)}
    assert "unexpected" in _import_error(tmp_path / "3", tensors=tensors)

    foreign = {"transformer.h.0.attn.weight": torch.zeros(4, 4), "lm_head.weight": torch.zeros(4, 4)}
    message = _import_error(tmp_path / "4", tensors=foreign)
    assert "not an EgoAllo-architecture denoiser" in message and "lm_head.weight" in message


def test_refuses_corrupt_or_missing_files(tmp_path: Path) -> None:
    release = write_release(tmp_path / "egoallo")
    weights = release / "checkpoints_3000000/model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(EgogrpoError, match=r"model\.safetensors: not a readable safetensors file"):
        import_egoallo(release, tmp_path / "out")
    (release / "model_config.yaml").unlink()
    with pytest.raises(EgogrpoError, match=r"model_config\.yaml: missing"):
        import_egoallo(release, tmp_path / "out")
    with pytest.raises(EgogrpoError, match="no such"):
        import_egoallo(tmp_path / "nowhere", tmp_path / "out")


# --- egogrpo's own checkpoint folder ---------------------------------------------------------------

SMALL = DenoiserConfig(
    d_latent=16, d_feedforward=32, d_noise_emb=8, num_heads=2, encoder_layers=1, decoder_layers=1,
    include_hands=False, num_betas=10,
)  # fmt: skip


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = EgoDenoiser(SMALL)
    save_checkpoint(tmp_path / "ckpt", model, SMALL, "default:0123456789ab", {"step": 12, "note": "x"})
    saved = json.loads((tmp_path / "ckpt/config.json").read_text())
    assert saved["format"] == "egogrpo-denoiser/1" and saved["d_latent"] == 16 and saved["egogrpo_version"]
    loaded, config, meta = load_checkpoint(tmp_path / "ckpt", device="cpu")
    assert config == SMALL and meta["body_model_id"] == "default:0123456789ab" and meta["extra"]["step"] == 12
    assert not loaded.training and torch.equal(_forward(loaded), _forward(model.eval()))
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "bad", model, SMALL, "x", {"tensor": torch.zeros(1)})


def _checkpoint_error(folder: Path) -> str:
    with pytest.raises(EgogrpoError) as error:
        load_checkpoint(folder)
    assert "\n" not in str(error.value)
    return str(error.value)


def test_checkpoint_bad_input(tmp_path: Path) -> None:
    assert "no such checkpoint folder" in _checkpoint_error(tmp_path / "missing")
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, EgoDenoiser(SMALL), SMALL, "default:0")
    config_text = (folder / "config.json").read_text()

    # A config that does not describe the weights.
    (folder / "config.json").write_text(config_text.replace('"d_feedforward": 32', '"d_feedforward": 64'))
    message = _checkpoint_error(folder)
    assert "model.safetensors" in message and "shape mismatch" in message and "mlp0.weight" in message
    (folder / "config.json").write_text(config_text.replace('"include_hands": false', '"include_hands": true'))
    assert "missing tensor(s): encoders.hand_rotmats" in _checkpoint_error(folder)
    (folder / "config.json").write_text(config_text.replace('"d_latent": 16', '"d_latent": 16, "zeta": 1'))
    assert "config.json" in _checkpoint_error(folder) and "zeta" in _checkpoint_error(folder)
    (folder / "config.json").write_text(config_text[:40])
    assert "config.json: not valid JSON" in _checkpoint_error(folder)
    (folder / "config.json").write_text(config_text)

    # Weights replaced by another architecture's (hash updated, so the names are what is checked).
    save_file({"backbone.conv1.weight": torch.zeros(3, 3)}, folder / "model.safetensors")
    message = _checkpoint_error(folder)
    assert "does not match the SHA-256" in message
    data = json.loads(config_text)
    data["weights_sha256"] = sha256_of_file(folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(data))
    assert "not an EgoAllo-architecture denoiser" in _checkpoint_error(folder)

    # Corrupt and missing files.
    (folder / "model.safetensors").write_bytes(b"\x00" * 7)
    del data["weights_sha256"]
    (folder / "config.json").write_text(json.dumps(data))
    assert "model.safetensors: not a readable safetensors file" in _checkpoint_error(folder)
    (folder / "model.safetensors").unlink()
    assert "model.safetensors: missing" in _checkpoint_error(folder)
    (folder / "config.json").unlink()
    (folder / "model_config.yaml").write_text(egoallo_yaml(FIELDS))
    message = _checkpoint_error(folder)
    assert "config.json: missing" in message and "import-egoallo" in message
