"""Reading back what a step leaves in the runner's files, the way the runner reads them."""

from __future__ import annotations


def parse_output_file(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT in the ``name<<DELIMITER`` … ``DELIMITER`` form (the only form the action writes);
    an output written twice is an error, as it would silently lose a value."""
    outputs: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            continue
        assert "<<" in line, f"not a heredoc output line: {line!r}"
        name, delimiter = line.split("<<", 1)
        end = lines.index(delimiter, index)
        assert name not in outputs, f"output {name!r} written twice"
        outputs[name] = "\n".join(lines[index:end])
        index = end + 1
    return outputs


def unescape_command_data(data: str) -> str:
    """A workflow command's data as the runner reads it (actions/runner ``ActionCommand.UnescapeData``:
    these replacements, in this order, on the whole string): what ``::add-mask::`` really registers."""
    for escaped, token in (("%0D", "\r"), ("%0A", "\n"), ("%25", "%")):
        data = data.replace(escaped, token)
    return data
