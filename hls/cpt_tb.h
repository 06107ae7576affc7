// cpt-hw HLS testbench: file I/O shared by C simulation (g++, cpt_hw/flows/csim.py) and the HLS tools' own
// csim/cosim.  Python writes the vectors, this runs the calls on a simulated DDR and writes the results
// back for Python to compare with cpt_hw.hw.golden; given an expected-results file it also compares itself
// (so `csim_design`/`cosim_design` fail on a mismatch).
//
// All integers little-endian.  Input  "CPTV": u32 magic, u32 version, u64 ddr_bytes, u32 n_calls,
//   ddr_bytes bytes of DDR image (byte address 0 upwards), n_calls x Cfg::n_inputs u64 register values
//   in the order of the kernel's input arguments (cpt_hw.hw.regmap.INPUTS; the generated testbench main
//   passes them to the kernel).
// Output "CPTR": u32 magic, u32 version, u32 n_calls, n_calls x (u32 status, u64 cycles, u32 id),
//   u64 ddr_bytes, the final DDR image.  An expected file has the output format; cycles are not compared.
#ifndef CPT_TB_H
#define CPT_TB_H

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cpt_util.h"

namespace cpt {
namespace tb {

static const uint32_t MAGIC_IN = 0x56545043u;   // "CPTV"
static const uint32_t MAGIC_OUT = 0x52545043u;  // "CPTR"
static const uint32_t VERSION = 2;

struct Result {
    uint32_t status;
    uint64_t cycles;
    uint32_t id;
};

struct Reader {
    std::FILE *f;
    std::string path;
    bool ok;
    explicit Reader(const char *p) : f(std::fopen(p, "rb")), path(p), ok(f != 0) {}
    ~Reader() {
        if (f) std::fclose(f);
    }
    uint64_t u(unsigned bytes) {
        unsigned char buf[8] = {0};
        if (!f || std::fread(buf, 1, bytes, f) != bytes) ok = false;
        uint64_t v = 0;
        for (unsigned i = 0; i < bytes; ++i) v |= uint64_t(buf[i]) << (8 * i);
        return v;
    }
    void bytes(std::vector<unsigned char> &out, uint64_t n) {
        out.resize(n);
        if (!f || (n && std::fread(&out[0], 1, n, f) != n)) ok = false;
    }
};

struct Writer {
    std::FILE *f;
    explicit Writer(const char *p) : f(std::fopen(p, "wb")) {}
    ~Writer() {
        if (f) std::fclose(f);
    }
    void u(uint64_t v, unsigned bytes) {
        unsigned char buf[8];
        for (unsigned i = 0; i < bytes; ++i) buf[i] = (v >> (8 * i)) & 0xff;
        std::fwrite(buf, 1, bytes, f);
    }
};

//: Bytes -> bus beats, little-endian (bit 8i + j of a beat is bit j of its byte i).  Element-wise, so it
//: does not depend on how ap_uint stores itself in memory.
template <class Bus>
void bytes_to_beats(const std::vector<unsigned char> &bytes, std::vector<Bus> &beats, unsigned beat_bytes) {
    beats.assign(bytes.size() / beat_bytes, Bus(0));
    for (size_t w = 0; w < beats.size(); ++w)
        for (unsigned i = 0; i < beat_bytes; ++i) beats[w](8 * i + 7, 8 * i) = bytes[w * beat_bytes + i];
}

template <class Bus>
void beats_to_bytes(const std::vector<Bus> &beats, std::vector<unsigned char> &bytes, unsigned beat_bytes) {
    bytes.resize(beats.size() * beat_bytes);
    for (size_t w = 0; w < beats.size(); ++w)
        for (unsigned i = 0; i < beat_bytes; ++i) bytes[w * beat_bytes + i] = beats[w](8 * i + 7, 8 * i).to_uint();
}

bool read_results(const char *path, std::vector<Result> &res, std::vector<unsigned char> &ddr) {
    Reader r(path);
    if (r.u(4) != MAGIC_OUT || r.u(4) != VERSION) return false;
    const uint32_t n = r.u(4);
    res.resize(n);
    for (uint32_t i = 0; i < n; ++i) {
        res[i].status = r.u(4);
        res[i].cycles = r.u(8);
        res[i].id = r.u(4);
    }
    r.bytes(ddr, r.u(8));
    return r.ok;
}

//: Run every call of the vector file through `call` (generated: the top function with the registers of one
//: call, r[0 .. Cfg::n_inputs)); returns the exit code.
template <class Cfg, class Call>
int main(int argc, char **argv, Call call) {
    typedef Types<Cfg> T;
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s VECTORS.bin RESULTS.bin [EXPECTED.bin]\n", argv[0]);
        return 2;
    }
    Reader in(argv[1]);
    if (!in.ok || in.u(4) != MAGIC_IN || in.u(4) != VERSION) {
        std::fprintf(stderr, "cpt tb: error: %s: not a cpt-hw vector file (version %u)\n", argv[1], VERSION);
        return 2;
    }
    const uint64_t ddr_bytes = in.u(8);
    const uint32_t n_calls = in.u(4);
    std::vector<unsigned char> image;
    in.bytes(image, ddr_bytes);
    std::vector<uint64_t> args(uint64_t(n_calls) * Cfg::n_inputs);
    for (size_t i = 0; i < args.size(); ++i) args[i] = in.u(8);
    if (!in.ok || ddr_bytes % T::BUS_BYTES != 0) {
        std::fprintf(stderr, "cpt tb: error: %s: truncated, or DDR size not whole bus beats\n", argv[1]);
        return 2;
    }
    std::vector<typename T::bus_t> ddr;
    bytes_to_beats(image, ddr, T::BUS_BYTES);

    std::vector<Result> res(n_calls);
    for (uint32_t i = 0; i < n_calls; ++i) {
        // Registers are as wide as the register map makes them: 32-bit scalars, addr-width addresses.
        call(ddr.empty() ? 0 : &ddr[0], &args[uint64_t(i) * Cfg::n_inputs], res[i]);
    }
    beats_to_bytes(ddr, image, T::BUS_BYTES);

    Writer out(argv[2]);
    if (!out.f) {
        std::fprintf(stderr, "cpt tb: error: cannot write %s\n", argv[2]);
        return 2;
    }
    out.u(MAGIC_OUT, 4);
    out.u(VERSION, 4);
    out.u(n_calls, 4);
    for (uint32_t i = 0; i < n_calls; ++i) {
        out.u(res[i].status, 4);
        out.u(res[i].cycles, 8);
        out.u(res[i].id, 4);
    }
    out.u(image.size(), 8);
    if (!image.empty()) std::fwrite(&image[0], 1, image.size(), out.f);

    if (argc < 4) return 0;
    std::vector<Result> want;
    std::vector<unsigned char> want_ddr;
    if (!read_results(argv[3], want, want_ddr) || want.size() != n_calls) {
        std::fprintf(stderr, "cpt tb: error: %s: unreadable expected-results file\n", argv[3]);
        return 2;
    }
    int bad = 0;
    for (uint32_t i = 0; i < n_calls; ++i) {
        if (res[i].status != want[i].status || res[i].id != want[i].id) {
            std::fprintf(stderr, "cpt tb: call %u: status 0x%x id 0x%08x, expected 0x%x 0x%08x\n", i, res[i].status,
                         res[i].id, want[i].status, want[i].id);
            ++bad;
        }
    }
    if (want_ddr != image) {
        size_t first = 0;
        while (first < image.size() && first < want_ddr.size() && image[first] == want_ddr[first]) ++first;
        std::fprintf(stderr, "cpt tb: DDR differs from the expected image, first at byte 0x%zx\n", first);
        ++bad;
    }
    std::printf("cpt tb: %u call(s), %s\n", n_calls, bad ? "MISMATCH" : "all match");
    return bad ? 1 : 0;
}

}  // namespace tb
}  // namespace cpt

#endif  // CPT_TB_H
