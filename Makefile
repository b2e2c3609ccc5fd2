# A thin front for the scripts in .ci/; CMake does the real work.
.PHONY: all run test clean
all:
	bash .ci/setup
run:
	bash .ci/setup --run
test:
	bash .ci/test
clean:
	rm -rf build build-asan build-domain
