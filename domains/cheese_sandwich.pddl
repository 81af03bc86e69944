; Cheese Sandwich, Robotouille's unrandomised layout: bread, bread and cheese on three tables,
; one spare table, the robot at the first bread. Optimal length 8.
(define (problem cheese_sandwich)
  (:domain cooking)
  (:objects
    robot1 - robot
    table1 table2 table3 table4 - table
    bread1 bread2 - bread
    cheese1 - cheese)
  (:init
    (at robot1 table1) (hand-empty robot1)
    (vacant table2) (vacant table3) (vacant table4)
    (on-station bread1 table1) (in bread1 table1) (clear bread1)
    (on-station bread2 table2) (in bread2 table2) (clear bread2)
    (on-station cheese1 table3) (in cheese1 table3) (clear cheese1)
    (empty table4))
  (:goal (and
    (on-station bread1 table1)
    (on cheese1 bread1)
    (on bread2 cheese1))))
