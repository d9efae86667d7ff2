"""What counts as a credential, and what is kept."""

from rgen_harness.file_writes import replacing, write_text
from rgen_harness.redact import mask_data, mask_text


def test_credentials_are_masked_in_text_and_data():
    text = (
        "pretrained=x,token=hf_abc123,add_bos_token=True "
        '{"api_key": "sk-1234567"} https://u:p4ss@host/v1 Authorization: Bearer abcdef123'
    )
    out = mask_text(text, values=["LITERALVALUE"])
    for secret in ("hf_abc123", "sk-1234567", "p4ss", "abcdef123"):
        assert secret not in out
    assert "add_bos_token=True" in out and "https://***@host/v1" in out
    data = {"token": "${HF_TOKEN}", "hf_token": "x", "max_gen_toks": 5, "url": "http://a:b@c"}
    assert mask_data(data) == {
        "token": "${HF_TOKEN}",
        "hf_token": "***",
        "max_gen_toks": 5,
        "url": "http://***@c",
    }
    assert mask_text(mask_text(text)) == mask_text(text)


def test_replacing_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "report.md"
    write_text(path, "old")
    try:
        with replacing(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed half-way")
    except RuntimeError:
        pass
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]
