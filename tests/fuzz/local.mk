# libFuzzer harnesses (scripts/fuzz builds them in build-fuzz with --enable-fuzz and runs
# them): response parsing + classification, money, durations, the whole config file.
FUZZ_HARNESSES = tests/fuzz/fuzz_response tests/fuzz/fuzz_money tests/fuzz/fuzz_duration \
	tests/fuzz/fuzz_config
if ENABLE_FUZZ
noinst_PROGRAMS += $(FUZZ_HARNESSES)
endif
# the harnesses link the library (built with -fsanitize=fuzzer-no-link) and libFuzzer's main
FUZZ_LINK = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_response_SOURCES = tests/fuzz/fuzz_response.c tests/fuzz/fuzz.h
tests_fuzz_fuzz_response_LDADD = $(SP_LIBS)
tests_fuzz_fuzz_response_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_money_SOURCES = tests/fuzz/fuzz_money.c tests/fuzz/fuzz.h
tests_fuzz_fuzz_money_LDADD = $(SP_LIBS)
tests_fuzz_fuzz_money_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_duration_SOURCES = tests/fuzz/fuzz_duration.c tests/fuzz/fuzz.h
tests_fuzz_fuzz_duration_LDADD = $(SP_LIBS)
tests_fuzz_fuzz_duration_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_config_SOURCES = tests/fuzz/fuzz_config.c tests/fuzz/fuzz.h
tests_fuzz_fuzz_config_LDADD = $(SP_LIBS)
tests_fuzz_fuzz_config_LDFLAGS = $(FUZZ_LINK)
# the seed corpora and dictionaries
EXTRA_DIST += tests/fuzz/corpus tests/fuzz/response.dict tests/fuzz/config.dict \
	tests/fuzz/money.dict tests/fuzz/duration.dict
