"""Generates ``common-passwords.txt``: passwords of 12+ characters that people choose because
they look strong to a length rule but are not (NIST SP 800-63B §3.1.1.2: check against
commonly-used, expected or compromised values).

Built from well-known weak patterns — dictionary and keyboard words, names, hospital and Hong
Kong context words, each with the suffixes people add (digits, years, ``!``) — not copied from
a third-party breach list. Entries are lower-case; the checker lower-cases and un-"leets"
a candidate before looking it up. Run ``python -m phiguard.web.data.make_common_passwords``
to regenerate; the output is deterministic.
"""

from __future__ import annotations

from pathlib import Path

BASES = """
password passw0rd passwd pass qwerty qwertyuiop qwertyui qwerty123 asdfgh asdfghjkl zxcvbnm
zxcvbn letmein welcome admin administrator root login iloveyou loveyou monkey dragon football
baseball basketball soccer sunshine princess trustno1 master shadow superman batman spiderman
hello freedom whatever computer internet starwars pokemon charlie michael jennifer jessica
ashley daniel thomas jordan hunter ranger buster tigger harley matrix killer cheese chocolate
cookie flower summer winter spring autumn secret changeme default guest test testing user
hospital hongkong kowloon hkid china chinese doctor nurse patient medical health clinic
surgery pharmacy system service support helpdesk maintenance vendor contractor company office
abc abcd abcdef abcdefg abc123 qazwsx qweasd 1qaz2wsx 1q2w3e4r 1q2w3e zaq12wsx passport
monday friday january december family mother father sister brother baby angel lovely
happy sweet honey beautiful forever mustang ferrari phiguard privacy security welcome1
""".split()  # noqa: SIM905 - a word list reads best as text

SEQUENCES = [
    "123456789012",
    "1234567890123",
    "12345678901234",
    "123456123456",
    "111111111111",
    "000000000000",
    "123123123123",
    "121212121212",
    "987654321098",
    "098765432109",
    "abcdefghijkl",
    "abcdefghijklm",
    "aaaaaaaaaaaa",
    "qwertyuiopas",
    "qwertyuiop12",
    "qwertyuiop123",
    "1qaz2wsx3edc",
    "1qaz2wsx3edc4rfv",
    "zaq12wsxcde3",
    "zaq1zaq1zaq1",
    "asdfghjkl123",
    "asdfghjkl;'",
    "1q2w3e4r5t6y",
    "1q2w3e4r5t6y7u",
    "q1w2e3r4t5y6",
    "qazwsxedcrfv",
    "qweasdzxc123",
    "147258369147",
    "159753159753",
    "789456123789",
    "abc123abc123",
    "password1234",
    "iloveyou1234",
    "letmeinletmein",
]

SUFFIXES = [
    "",
    "1",
    "12",
    "123",
    "1234",
    "12345",
    "123456",
    "!",
    "1!",
    "12!",
    "123!",
    "1234!",
    "@123",
    "#1",
    "!!",
    "!@#",
    "123!@#",
    "01",
    "007",
    "69",
    "88",
    "888",
    "168",
    "520",
    "1314",
    "5201314",
]
YEARS = [str(y) for y in range(1950, 2031)]
MIN_LENGTH = 12


def generate() -> list[str]:
    out: set[str] = set(SEQUENCES)
    for base in BASES:
        for word in (base, base + base, base + "pass", "my" + base):
            for suffix in SUFFIXES:
                out.add(word + suffix)
        for year in YEARS:
            out.add(base + year)
            out.add(base + year + "!")
            out.add(base + "@" + year)
    return sorted(w.lower() for w in out if len(w) >= MIN_LENGTH)


def main() -> None:
    target = Path(__file__).with_name("common-passwords.txt")
    words = generate()
    target.write_text("\n".join(words) + "\n")
    print(f"wrote {len(words)} passwords to {target}")


if __name__ == "__main__":
    main()
