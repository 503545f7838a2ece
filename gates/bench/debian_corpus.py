"""Debian's package list as a text corpus (one document per package: id =
name, title = name with spaces, body = description), read from apt's lists
(`apt-helper cat-file`) or a decompressed Packages file. Shared by the
search and vector benchmarks."""
import glob
import os
import subprocess


def load(packages=None):
    if packages:
        text = open(packages, encoding="utf-8", errors="replace").read()
    else:
        lists = sorted(glob.glob("/var/lib/apt/lists/*_main_binary-*_Packages*"), key=os.path.getsize)[-1]
        text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", lists], capture_output=True, text=True, check=True).stdout
    docs, seen = [], set()
    for stanza in text.split("\n\n"):
        name, desc, in_desc = None, [], False
        for line in stanza.splitlines():
            if line.startswith("Package: "):
                name = line[9:].strip()
            elif line.startswith("Description: "):
                desc, in_desc = [line[13:]], True
            elif in_desc and line.startswith(" "):
                desc.append(line.strip().strip("."))
            else:
                in_desc = False
        if name and name not in seen:
            seen.add(name)
            docs.append({"id": name, "title": name.replace("-", " "), "body": " ".join(desc)})
    return docs
