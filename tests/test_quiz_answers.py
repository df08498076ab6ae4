"""Careless answer files: each is refused with a message naming the file (and line), never a
traceback from the csv module or a silently empty study; a quiz of an unfinished run says so."""

from __future__ import annotations

import pytest

from gan_lib import storage
from gan_lib.studies import quiz
from tests.test_quiz import built, tiny_run, truth, write_answers  # noqa: F401 (fixtures)


def test_a_header_only_csv_is_refused(built, tmp_path):  # noqa: F811
    _, key = built
    path = tmp_path / "empty.csv"
    path.write_text(",".join(quiz.COLUMNS) + "\r\n")
    with pytest.raises(ValueError, match=r"empty.csv: no answers, only the header row.*\(40\)"):
        quiz.read_answers([path], key)


@pytest.mark.parametrize(("old", "new", "message"), [
    (",1004\r\n", ",-4\r\n", "a.csv line 6: ms=-4: expected the milliseconds"),
    (",r,", "," + "r" * 140_000 + ",", "a.csv line 2: field larger than field limit .*not an"),
])
def test_malformed_fields_name_the_file_and_line(built, tmp_path, old, new,  # noqa: F811
                                                 message):
    _, key = built
    path = write_answers(tmp_path / "a.csv", key, "r", truth(key))
    path.write_bytes(path.read_bytes().replace(old.encode(), new.encode(), 1))
    with pytest.raises(ValueError, match=message):
        quiz.read_answers([path], key)


def test_files_that_are_not_utf8_name_the_file(built, tmp_path):  # noqa: F811
    _, key = built
    path = write_answers(tmp_path / "latin.csv", key, "r", truth(key))
    path.write_bytes(path.read_bytes().replace(b",r,", b",Ren\xe9,"))
    with pytest.raises(ValueError, match=r"latin.csv is not UTF-8 text \(invalid .* at byte"):
        quiz.read_answers([path], key)
    bad_json = tmp_path / "scores.json"
    bad_json.write_bytes(b'{"run": "caf\xe9"}')
    with pytest.raises(ValueError, match="scores.json is not UTF-8 text"):
        storage.read_json(bad_json)
    bad_json.write_text('{"run": "x",}')
    with pytest.raises(ValueError, match=r"scores.json is not valid JSON \(.* line 1, column"):
        storage.read_json(bad_json)


def test_a_quiz_on_an_unfinished_run_says_which_iteration_it_shows(tiny_run, capsys):  # noqa: F811
    quiz.build_quiz("tiny", n=4, seed=0)
    assert ("run 'tiny' is unfinished: its latest snapshot is iteration 4 of 20, and that is "
            "the one the quiz shows. To finish it first: python -m gan_lib train --run tiny "
            "--resume") in capsys.readouterr().out
