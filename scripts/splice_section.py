#!/usr/bin/env python3
"""Replaces the section of BENCHMARKS.md between `<!-- NAME begin -->` and `<!-- NAME end -->` with the text of a
file (which carries the two markers itself), or appends it when the markers are not there yet.
Usage: scripts/splice_section.py NAME SECTION_FILE [TARGET (default BENCHMARKS.md)]"""
import re
import sys

name, section_file = sys.argv[1], sys.argv[2]
target = sys.argv[3] if len(sys.argv) > 3 else "BENCHMARKS.md"
section = open(section_file).read().rstrip() + "\n"
text = open(target).read()
pattern = re.compile(r"<!-- %s begin -->.*?<!-- %s end -->\n?" % (re.escape(name), re.escape(name)), re.S)
text = pattern.sub(lambda m: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
open(target, "w").write(text)
