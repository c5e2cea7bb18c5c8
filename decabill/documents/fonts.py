"""The fonts the documents are set in (DejaVu Sans), prepared once per process for fpdf2.

PDF/A needs every font embedded. fpdf2 embeds a subset of the font a document was given: at `output()` it
subsets it with fontTools, saves it, and writes its glyph widths, its ToUnicode map and a 128 kB
CIDToGIDMap — for every document, about a third of a render. Most documents are written in the Latin
alphabets of the EU, so those glyphs are prepared once per process and embedded whole:

* **the Latin set** (`_CUTS["latin"]`: Latin-1, Latin Extended-A, the Romanian commas, dashes, quotes,
  bullet, ellipsis, euro sign; ~360 glyphs, ~13 kB compressed per style). DejaVu Sans is cut down to it
  once, without hinting or layout tables; fpdf2 measures and encodes text with that font, and every
  document shares one code map for it (`_WholeSubsetMap`). So the font's PDF objects are the same in
  every document: their streams are made and compressed once (`_WholeFont`) and
  `OutputProducer._add_fonts` only adds them. A document
  carries all ~360 glyphs instead of the ~70 it prints (~17 kB more for the two styles).
* **any other text** (Greek, Cyrillic, ... or beyond) is set from a copy of the font cut down to the
  common scripts (`_CUTS["common"]`) or from the full font, and fpdf2 subsets it per document as
  usual, with the subsets memoised per glyph set (`_programs`).
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import re
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any, Final

from fontTools import subset as font_subset
from fontTools import ttLib
from fpdf import FPDF
from fpdf import output as fpdf_output
from fpdf.fonts import SubsetMap, TTFFont
from fpdf.syntax import Name, PDFArray, PDFContentStream, PDFObject

from decabill.documents.model import DocumentError

FONT_FAMILY: Final = "DejaVuSans"
_FONT_REGULAR: Final = "DejaVuSans.ttf"
_FONT_BOLD: Final = "DejaVuSans-Bold.ttf"
# Debian/Ubuntu package fonts-dejavu-core.
_SYSTEM_FONT_DIR: Final = Path("/usr/share/fonts/truetype/dejavu")


@dataclass(frozen=True)
class FontFiles:
    """The two TrueType files the documents are set in."""

    regular: Path
    bold: Path


def find_fonts() -> FontFiles:
    """Locate DejaVu Sans: matplotlib's bundled copy if installed, else Debian's.

    Both candidates are the same typeface, so the layout does not depend on
    which one is found. No installed Python package in our stack ships a
    TrueType font, hence the system package as the usual source.
    """
    for directory in _font_dir_candidates():
        regular, bold = directory / _FONT_REGULAR, directory / _FONT_BOLD
        if regular.is_file() and bold.is_file():
            return FontFiles(regular=regular, bold=bold)
    raise DocumentError(
        "DejaVu Sans not found: install the Debian package fonts-dejavu-core "
        "(or pass fonts=FontFiles(...) to the render functions)"
    )


def _font_dir_candidates() -> list[Path]:
    candidates = []
    # find_spec locates matplotlib without importing it (importing is slow).
    spec = importlib.util.find_spec("matplotlib")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidates.append(Path(location) / "mpl-data" / "fonts" / "ttf")
    candidates.append(_SYSTEM_FONT_DIR)
    return candidates


@lru_cache(maxsize=1)
def default_fonts() -> FontFiles:
    return find_fonts()


# fontTools logs every subsetting step at INFO (several lines per rendered document); a billing day
# renders one document per customer, so its chatter is kept to warnings.
for _name in ("fontTools", "fontTools.subset", "fontTools.ttLib", "fpdf"):
    logging.getLogger(_name).setLevel(logging.WARNING)

# The characters documents are written in, smallest set first. "latin" is embedded whole (see the module
# docstring); a document with a character outside it is set from the font cut down to "common" (the
# per-document subsetting reads far less than DejaVu Sans' 6,000 glyphs) or, beyond that, the full font.
_WHOLE: Final = "latin"
_CUTS: Final = {
    # Latin-1 and Latin Extended-A (the EU's Latin alphabets), Romanian S/T with comma below, dashes,
    # quotes, bullet, ellipsis, euro sign
    _WHOLE: ((0x20, 0x7E), (0xA0, 0x17F), (0x218, 0x21B), (0x2013, 0x2014), (0x2018, 0x201E), (0x2022, 0x2022),
             (0x2026, 0x2026), (0x20AC, 0x20AC)),
    # all Latin, Greek, Cyrillic, general punctuation, currency signs and letter-like symbols
    "common": ((0x20, 0x24F), (0x370, 0x52F), (0x1E00, 0x1EFF), (0x2000, 0x20CF), (0x2100, 0x215F)),
}


def _covered(codepoint: int, cut: str) -> bool:
    return any(low <= codepoint <= high for low, high in _CUTS[cut])


# per cut, a pattern of any character outside it (line breaks and tabs are not printed as glyphs)
_OUTSIDE: Final = {
    cut: re.compile("[^\n\t" + "".join(f"{re.escape(chr(low))}-{re.escape(chr(high))}" for low, high in ranges) + "]")
    for cut, ranges in _CUTS.items()
}


def _cut_for(text: str) -> str | None:
    """The smallest cut that has every character of `text`, or None (the full font)."""
    return next((cut for cut, outside in _OUTSIDE.items() if not outside.search(text)), None)


def add_fonts(pdf: FPDF, fonts: FontFiles, text: str) -> None:
    """Add the regular and bold font to `pdf`, prepared for a document that prints (some of) `text`."""
    cut = _cut_for(text)
    _add_font(pdf, "", fonts.regular, cut=cut)
    _add_font(pdf, "B", fonts.bold, cut=cut)


# --- fonts parsed once per process ------------------------------------------------


@dataclass(frozen=True)
class _WholeFont:
    """The PDF streams of a font embedded whole: the same in every document, compressed once."""

    program: bytes  # FontFile2, compressed
    program_length: int  # its /Length1
    widths: str  # the CIDFont's /W array (codes are glyph ids)
    to_unicode: bytes  # the ToUnicode CMap, compressed
    cid_to_gid: bytes  # the CIDToGIDMap, compressed


class _WholeSubsetMap(SubsetMap):
    """fpdf2's map of a document's glyphs to their codes in the PDF, for a font embedded whole: every
    glyph is in it from the start, so it never changes and all documents share it (the text is checked
    to be in the font before drawing, see `_cut_for`). A glyph's code is its glyph id, except that the
    space has code 0x20 as in fpdf2's own maps (fpdf2 spaces justified words by the code of " ") and the
    glyph with id 0x20 has the space's id instead."""

    def __init__(self, font: TTFFont, program: bytes) -> None:
        super().__init__(font)
        space = font.glyph_ids[0x20]
        swapped = {space: 0x20, 0x20: space}
        self._char_id_per_glyph = {glyph: swapped.get(glyph.glyph_id, glyph.glyph_id)
                                   for glyph in map(self._glyph, font.glyph_ids)}
        self._next = 0x10000  # no code is handed out (pick_glyph only does so for a glyph not yet mapped)
        self.whole = _whole_font(program, self._char_id_per_glyph.items())

    def _glyph(self, codepoint: int) -> Any:
        glyph = self.get_glyph(unicode=codepoint)
        assert glyph is not None
        return glyph


@dataclass(frozen=True)
class _ParsedFont:
    """A font file parsed once per process: its bytes and fpdf2's metrics of it (widths, cmap, glyph
    ids), which documents share; for a font embedded whole also its code map and PDF streams."""

    data: bytes
    template: TTFFont
    subset: _WholeSubsetMap | None = None


_parsed: dict[tuple[Path, str, str | None], _ParsedFont] = {}
_parsed_lock = threading.Lock()

# fontTools' subsetting options for the fonts embedded whole: the glyphs, their metrics and the tables a
# PDF viewer reads; no hinting (~60 % of DejaVu's glyph data, for pixel grids, not print) and none of the
# OpenType layout tables (fpdf2 drops them from its subsets too: it positions every glyph itself).
_EMBEDDED_OPTIONS: Final = {"notdef_outline": True, "recommended_glyphs": True, "hinting": False,
                            "layout_features": [], "drop_tables": ["FFTM", "GDEF", "GPOS", "GSUB", "MATH", "hdmx",
                                                                   "meta", "DSIG", "kern"]}
# ... and for the cut fonts fpdf2 subsets again per document: everything it may use (layout, names)
_CUT_OPTIONS: Final = {"notdef_outline": True, "recommended_glyphs": True, "layout_features": ["*"],
                       "drop_tables": ["FFTM"], "name_IDs": ["*"], "name_languages": ["*"], "glyph_names": True,
                       "hinting": False}


def _cut_down(path: Path, cut: str, options: dict[str, Any]) -> bytes:
    font = ttLib.TTFont(str(path), recalcTimestamp=False)
    subsetter = font_subset.Subsetter(font_subset.Options(**options))
    subsetter.populate(unicodes=[c for c in font.getBestCmap() if _covered(c, cut)])
    subsetter.subset(font)
    output = BytesIO()
    font.save(output)
    return output.getvalue()


def _parsed_font(path: Path, style: str, cut: str | None) -> _ParsedFont:
    key = (path, style, cut)
    with _parsed_lock:
        if key not in _parsed:
            if cut is None:
                data = path.read_bytes()
            else:
                data = _cut_down(path, cut, _EMBEDDED_OPTIONS if cut == _WHOLE else _CUT_OPTIONS)
            scratch = FPDF()
            # fpdf2 reads a font from a path; BytesIO works for fontTools, which is all TTFFont uses it for
            template = TTFFont(scratch, BytesIO(data), f"{FONT_FAMILY.lower()}{style}", style)  # type: ignore[arg-type]
            subset = _WholeSubsetMap(template, data) if cut == _WHOLE else None
            _parsed[key] = _ParsedFont(data, template, subset)
        return _parsed[key]


def _whole_font(program: bytes, codes: Iterable[tuple[Any, int]]) -> _WholeFont:
    """The streams fpdf2 writes for the font `program` in a document that uses each of its glyphs with
    the given code (`_WholeSubsetMap`)."""
    by_code: dict[int, Any] = {}  # code -> glyph (the first code point a glyph is printed for)
    for glyph, code in sorted(codes, key=lambda item: item[0].unicode):
        by_code.setdefault(code, glyph)
    # /W: runs of consecutive codes, "first [w1 w2 ...]", in fpdf2's widths (1/1000 em)
    runs: list[list[int]] = []
    for code in sorted(by_code):
        if not runs or runs[-1][-1] != code - 1:
            runs.append([])
        runs[-1].append(code)
    widths = " ".join(f"{run[0]} [{' '.join(str(by_code[code].glyph_width) for code in run)}]" for run in runs)
    mappings = [f"<{code:04X}> <{_utf16(glyph.unicode[0])}>" for code, glyph in sorted(by_code.items())]
    cid_to_gid = bytearray(2 * 0x10000)  # two bytes per code (CID): its glyph id
    for code, glyph in by_code.items():
        cid_to_gid[2 * code : 2 * code + 2] = glyph.glyph_id.to_bytes(2, "big")
    return _WholeFont(program=zlib.compress(program, 9), program_length=len(program), widths=f"[{widths}]",
                      to_unicode=zlib.compress(_to_unicode_cmap(mappings).encode("ascii"), 9),
                      cid_to_gid=zlib.compress(bytes(cid_to_gid), 9))


def _utf16(codepoint: int) -> str:
    return chr(codepoint).encode("utf-16-be").hex().upper()


def _to_unicode_cmap(mappings: Sequence[str]) -> str:
    """A ToUnicode CMap (2-byte codes) of `bfchar` mappings, as fpdf2 writes it."""
    blocks = "".join(f"{len(block)} beginbfchar\n" + "\n".join(block) + "\nendbfchar\n"
                     for block in (mappings[i : i + 100] for i in range(0, len(mappings), 100)))  # 100 a block at most
    return ("/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
            "/CIDSystemInfo\n<</Registry (Adobe)\n/Ordering (UCS)\n/Supplement 0\n>> def\n"
            "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
            f"1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n{blocks}"
            "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend")


class _DocumentFont(ttLib.TTFont):
    """The fontTools object of one document's font: it knows which parsed font it was read from (the
    key of its subsets in `_programs`) and keeps the font program fpdf2 saves from it at `output()`."""

    def __init__(self, source: tuple[Path, str, str | None], data: bytes) -> None:
        super().__init__(BytesIO(data), recalcTimestamp=False, lazy=True)
        self.source = source
        self.saved: bytes | None = None

    def save(self, file: Any, reorderTables: bool | None = True) -> None:  # noqa: N803 (fontTools' name)
        output = BytesIO()
        super().save(output, reorderTables)
        self.saved = output.getvalue()
        file.write(self.saved)


@dataclass(frozen=True)
class _FontProgram:
    """A font subset as fpdf2 embeds it: the font program and the glyph ids in it."""

    data: bytes
    glyph_ids: dict[str, int]


class _SubsetFont(ttLib.TTFont):
    """Stands in for a document's font when the subset it needs was made before (`_programs`).

    fpdf2's `output()` runs fontTools' subsetter on the document's font, asks it for the glyph ids and
    saves it (output.py `_add_fonts`); this font holds no tables, so the subsetter has nothing to do, and
    it answers with the program made the first time. The program depends only on the font and the set of
    glyphs (fontTools' subsetting is deterministic), so the output is the same byte for byte."""

    def __init__(self, program: _FontProgram) -> None:
        super().__init__()
        self.program = program
        self.setGlyphOrder(list(program.glyph_ids))

    def getGlyphID(self, glyphName: str) -> int:  # noqa: N802, N803 (fontTools' names)
        return self.program.glyph_ids[glyphName]

    def save(self, file: Any, reorderTables: bool | None = True) -> None:  # noqa: N803
        file.write(self.program.data)


# Subsets made in this process, by (parsed font, glyph names), for the documents not in the Latin set.
# Bounded (~10-20 kB each).
_programs: dict[tuple[tuple[Path, str, str | None], frozenset[str]], _FontProgram] = {}
_PROGRAMS_KEPT: Final = 512


class _Stream(PDFContentStream):
    """A stream whose contents were compressed beforehand (fpdf2's compresses them when made)."""

    def __init__(self, compressed: bytes, length1: int | None = None) -> None:
        PDFObject.__init__(self)
        self._contents = compressed
        self.filter = Name("FlateDecode")
        self.length = len(compressed)
        self.length1 = length1


class OutputProducer(fpdf_output.OutputProducer):
    """fpdf2's PDF writer with the fonts prepared once per process (`FPDF.output(output_producer_class=...)`,
    fpdf2's hook for it)."""

    def _add_fonts(self, *args: Any, **kwargs: Any) -> Any:
        fonts = sorted(self.fpdf.fonts.values(), key=lambda font: font.i)
        if all(isinstance(font, TTFFont) and isinstance(font.subset, _WholeSubsetMap) for font in fonts):
            return {font.i: self._add_whole_font(font) for font in fonts}
        return self._add_subset_fonts(*args, **kwargs)

    def _add_whole_font(self, font: TTFFont) -> fpdf_output.PDFFont:
        """The objects fpdf2 writes for a TrueType font (a Type0 font of Identity-H codes over a
        CIDFontType2 with its descriptor, the embedded program and ToUnicode), made from the streams
        prepared once."""
        assert isinstance(font.subset, _WholeSubsetMap)
        whole, name = font.subset.whole, f"MPDFAA+{font.name}"  # the subset tag fpdf2 gives its fonts
        composite = fpdf_output.PDFFont(subtype="Type0", base_font=name, encoding="Identity-H")
        self._add_pdf_obj(composite, "fonts")
        cid_font = fpdf_output.PDFFont(subtype="CIDFontType2", base_font=name, d_w=font.desc.missing_width,
                                       w=whole.widths)
        self._add_pdf_obj(cid_font, "fonts")
        composite.descendant_fonts = PDFArray([cid_font])
        composite.to_unicode = _Stream(whole.to_unicode)
        self._add_pdf_obj(composite.to_unicode, "fonts")
        cid_font.c_i_d_system_info = fpdf_output.CIDSystemInfo()
        self._add_pdf_obj(cid_font.c_i_d_system_info, "fonts")
        descriptor = font.desc  # the document's own copy (`_add_font`)
        descriptor.font_name = Name(name)
        self._add_pdf_obj(descriptor, "fonts")
        cid_font.font_descriptor = descriptor
        cid_font.c_i_d_to_g_i_d_map = _Stream(whole.cid_to_gid)
        self._add_pdf_obj(cid_font.c_i_d_to_g_i_d_map, "fonts")
        program = _Stream(whole.program, length1=whole.program_length)
        self._add_pdf_obj(program, "fonts")
        descriptor.font_file2 = program  # type: ignore[attr-defined]
        return composite

    def _add_subset_fonts(self, *args: Any, **kwargs: Any) -> Any:
        """fpdf2's own font output, with the subsets memoised per glyph set (`_programs`)."""
        made_here = []
        for font in self.fpdf.fonts.values():
            if isinstance(font, TTFFont) and isinstance(font.ttfont, _DocumentFont):
                key = (font.ttfont.source, frozenset(font.subset.get_all_glyph_names()))
                program = _programs.get(key)
                if program:
                    font.ttfont = _SubsetFont(program)
                else:
                    made_here.append((key, font))
        result = super()._add_fonts(*args, **kwargs)
        for key, font in made_here:
            ttfont = font.ttfont
            if ttfont.saved is not None:
                if len(_programs) >= _PROGRAMS_KEPT:
                    _programs.clear()
                glyph_ids = {name: ttfont.getGlyphID(name) for name in ttfont.getGlyphOrder()}
                _programs[key] = _FontProgram(ttfont.saved, glyph_ids)
        return result


def _add_font(pdf: FPDF, style: str, path: Path, *, cut: str | None) -> None:
    """`pdf.add_font` without parsing the file again: a copy of the process's parsed font with the
    per-document state (its index in the document, its font descriptor; for a font subset per document
    its own subset map and fontTools object) fresh."""
    parsed = _parsed_font(path, style, cut)
    font = copy.copy(parsed.template)
    font.i = len(pdf.fonts) + 1
    font.biggest_size_pt = 0
    font.missing_glyphs = []
    # the font descriptor becomes a PDF object of the document at output(): its id and program are set on
    # it, so each document has its own (renders run in several threads)
    font.desc = copy.copy(parsed.template.desc)
    if parsed.subset:
        font.subset = parsed.subset
    else:
        font.ttfont = _DocumentFont((path, style, cut), parsed.data)
        font.subset = SubsetMap(font)
    pdf.fonts[font.fontkey] = font
