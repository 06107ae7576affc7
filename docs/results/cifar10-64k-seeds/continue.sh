#!/bin/bash
# One device call that continues the four ResNet-74 seed runs (issue 18, part 3) from the checkpoints committed
# in partial/ (see partial/README.md).  Run from the repository root on the device with
#   END=<seconds the call may take, e.g. 560> bash docs/results/cifar10-64k-seeds/continue.sh
# and carry [".devtree/data"] (the CIFAR-10 tarball; the checkpoints travel as tracked files).  The runs are
# spread over the GPUs present: one per GPU on 4, else round-robin under MPS (2 per GPU on 2, all 4 on 1).
# Each run is stopped by bench_accuracy's --deadline (SIGINT: a checkpoint at the current iteration) so the
# call ends by itself about END s after it began; the run folders come back as $OUT/seedS_R.tgz, snapshots of
# them every 60 s as well (in case the call is cut short); the device returns only so many files, so the
# trainings' logs come back as one, $OUT/train_logs.txt.
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/host:$PWD${PYTHONPATH:+:$PYTHONPATH}
T0=$SECONDS; END=${END:-540}; NGPU=$(nvidia-smi -L | wc -l); nvidia-smi -L
P=docs/results/cifar10-64k-seeds/partial
mkdir -p ../shared/data .devtree/runs && cp .devtree/data/cifar10-jpeg.tar.gz ../shared/data/ && cp -r $P/seed1 $P/seed2 .devtree/runs/
python3 -c "from cpt_hw.train.data import load_dataset; load_dataset('cifar10', '../shared/data/cifar10-jpeg.tar.gz')" && echo "data decoded after $((SECONDS-T0)) s"
[ $NGPU -lt 4 ] && nvidia-cuda-mps-control -d
D=$((END - (SECONDS-T0) - 15)); echo "training deadline $D s, $NGPU GPUs"
snap() { local t=$OUT/.$1.tgz; for S in 1 2; do for R in static_8_8 cpt_3_8_8; do
  d=.devtree/runs/seed$S/resnet74_$R; tar czf $t -C .devtree/runs/seed$S resnet74_$R && mv $t $OUT/seed${S}_$R.tgz
  echo "$((SECONDS-T0)) s $d: $(grep '"train"' $d/metrics.jsonl | tail -1 | cut -c1-40)"; done; done; }
( while sleep 60; do snap bk >> $OUT/progress.txt 2>&1; done ) & BK=$!
G=0
for S in 1 2; do for R in "static 8/8" "CPT 3-8/8"; do
  CUDA_VISIBLE_DEVICES=$((G % NGPU)) python3 bench/bench_accuracy.py --data ../shared/data/cifar10-jpeg.tar.gz --models resnet74 \
    --iters 64000 --runs-only "$R" --seed $S --runs .devtree/runs/seed$S --out /tmp/acc_${S}_$G --parallel 1 \
    --deadline $D > /tmp/train_${S}_$G.txt 2>&1 &
  G=$((G+1))
done; done
sleep 1; jobs -l
wait $(jobs -p | grep -v "^$BK$")
kill $BK; wait $BK 2>/dev/null
echo "training stopped after $((SECONDS-T0)) s"
snap fin; tail -n 30 /tmp/train_*.txt > $OUT/train_logs.txt; for f in /tmp/train_*.txt; do echo "== $f"; tail -n 4 $f; done
echo "done after $((SECONDS-T0)) s"
