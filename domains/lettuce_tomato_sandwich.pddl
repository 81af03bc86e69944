; Lettuce-tomato sandwich: lettuce and tomato must each be cut (three cuts on a board) before
; they go between the breads.
(define (problem lettuce_tomato_sandwich)
  (:domain cooking)
  (:objects
    robot1 - robot
    table1 table2 table3 table4 - table
    board1 - board
    bread1 bread2 - bread
    lettuce1 - lettuce
    tomato1 - tomato
    zero one two three - count)
  (:init
    (at robot1 table1) (hand-empty robot1)
    (vacant table2) (vacant table3) (vacant table4) (vacant board1)
    (next-count zero one) (next-count one two) (next-count two three)
    (on-station bread1 table1) (in bread1 table1) (clear bread1)
    (on-station bread2 table2) (in bread2 table2) (clear bread2)
    (on-station lettuce1 table3) (in lettuce1 table3) (clear lettuce1)
    (on-station tomato1 table4) (in tomato1 table4) (clear tomato1)
    (cuttable lettuce1) (cut-progress lettuce1 zero)
    (cuttable tomato1) (cut-progress tomato1 zero)
    (empty board1))
  (:goal (and
    (on-station bread1 table1)
    (on lettuce1 bread1)
    (cut-progress lettuce1 three)
    (on tomato1 lettuce1)
    (cut-progress tomato1 three)
    (on bread2 tomato1))))
